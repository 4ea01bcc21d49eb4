-- squawk docs "require-concurrent-index-deletion" ("Use"):
-- allows reads and writes to table while Postgres waits for conflicting transactions to finish
DROP INDEX CONCURRENTLY "app"."email_idx";
