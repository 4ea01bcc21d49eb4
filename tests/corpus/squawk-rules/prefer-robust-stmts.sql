-- squawk docs "prefer-robust-stmts", each "instead of" (the rule applies to files run outside a
-- transaction, e.g. with CREATE INDEX CONCURRENTLY, where a failure leaves half the file applied):
ALTER TABLE "app_user" ADD COLUMN "email" integer NULL;
CREATE INDEX CONCURRENTLY "email_idx" ON "app_user" ("email");
DROP TABLE "foo_tbl";
ALTER TABLE "app_user" DROP COLUMN "col_name";
ALTER TABLE "foo_tbl" DROP CONSTRAINT "foo_constraint";
DROP INDEX "foo_idx";
