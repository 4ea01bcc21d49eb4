-- squawk rule tests (crates/squawk_linter/src/rules/ban_drop_column.rs: err); the docs page has no SQL.
ALTER TABLE "bar_tbl" DROP COLUMN "foo_col" CASCADE;
