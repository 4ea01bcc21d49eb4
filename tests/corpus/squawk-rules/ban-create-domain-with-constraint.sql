-- squawk rule tests (crates/squawk_linter/src/rules/ban_create_domain_with_constraint.rs: err,
-- err_with_multiple_constraints); the docs page has no SQL.
CREATE DOMAIN domain_name_3 AS NUMERIC(15,5) CHECK (value > 0);
create domain d as t check (value > 0) not null;
