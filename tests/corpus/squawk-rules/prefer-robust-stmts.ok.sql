-- squawk docs "prefer-robust-stmts", each "use". The docs write the first one as
-- `ADD COLUMN "email" IF NOT EXISTS integer NULL`, which PostgreSQL rejects; written here in valid order.
ALTER TABLE "app_user" ADD COLUMN IF NOT EXISTS "email" integer NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS "email_idx" ON "app_user" ("email");
DROP TABLE IF EXISTS "foo_tbl";
ALTER TABLE "app_user" DROP COLUMN IF EXISTS "col_name";
ALTER TABLE "foo_tbl" DROP CONSTRAINT IF EXISTS "foo_constraint";
DROP INDEX IF EXISTS "foo_idx";
