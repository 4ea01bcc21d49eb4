-- squawk docs "ban-concurrent-index-creation-in-transaction" ("Use"):
BEGIN;
-- <any other commands being run transactionally>
COMMIT;

CREATE INDEX CONCURRENTLY "email_idx" ON "app_user" ("email");
