-- squawk rule tests (ban_create_domain_with_constraint.rs: ok)
-- creating without a constraint is okay
CREATE DOMAIN domain_name_1 AS TEXT;
CREATE DOMAIN domain_name_2 AS CHARACTER VARYING;
