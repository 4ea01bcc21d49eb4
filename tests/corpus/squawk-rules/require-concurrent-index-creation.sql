-- squawk docs "require-concurrent-index-creation" ("Instead of"):
-- blocks writes to table while index is built
CREATE INDEX "email_idx" ON "app_user" ("email");
