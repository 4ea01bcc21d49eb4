-- squawk docs "constraint-missing-not-valid" ("Instead of"):
ALTER TABLE "accounts" ADD CONSTRAINT "positive_balance" CHECK ("balance" >= 0);
