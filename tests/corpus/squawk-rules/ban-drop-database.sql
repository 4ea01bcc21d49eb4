-- squawk rule tests (crates/squawk_linter/src/rules/ban_drop_database.rs); the docs page has no SQL.
DROP DATABASE "table_name";
DROP DATABASE IF EXISTS "table_name";
DROP DATABASE IF EXISTS "table_name";
