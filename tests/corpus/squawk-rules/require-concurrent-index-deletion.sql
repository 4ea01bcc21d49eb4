-- squawk docs "require-concurrent-index-deletion" ("Instead of"):
-- blocks reads and writes to table
DROP INDEX "app"."email_idx";
