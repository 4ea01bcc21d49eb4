-- squawk rule tests (crates/squawk_linter/src/rules/renaming_column.rs: err); the docs page has no SQL.
ALTER TABLE "table_name" RENAME COLUMN "column_name" TO "new_column_name";
