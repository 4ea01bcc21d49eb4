-- squawk rule tests (crates/squawk_linter/src/rules/ban_drop_table.rs: err); the docs page has no SQL.
DROP TABLE "table_name";
DROP TABLE IF EXISTS "table_name";
DROP TABLE IF EXISTS "table_name";
