-- squawk docs "require-concurrent-index-creation" ("Use"):
-- allows reads and writes while index is built
CREATE INDEX CONCURRENTLY "email_idx" ON "app_user" ("email");
