-- squawk rule tests (crates/squawk_linter/src/rules/ban_alter_domain_with_add_constraint.rs: err);
-- the docs page has no SQL.
ALTER DOMAIN domain_name ADD CONSTRAINT constraint_name CHECK (value > 0);
