-- squawk rule tests (crates/squawk_linter/src/rules/ban_drop_not_null.rs: err); the docs page has no SQL.
ALTER TABLE "bar_tbl" ALTER COLUMN "foo_col" DROP NOT NULL;
