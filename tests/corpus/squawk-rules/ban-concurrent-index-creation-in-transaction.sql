-- squawk docs "ban-concurrent-index-creation-in-transaction" ("Instead of"):
BEGIN;
-- <any other commands being run transactionally>
CREATE INDEX CONCURRENTLY "email_idx" ON "app_user" ("email");
COMMIT;
