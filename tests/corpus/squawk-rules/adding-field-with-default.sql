-- squawk docs "adding-field-with-default", section "adding a volatile default" ("Instead of"; flagged
-- on PostgreSQL < 11, where any default rewrites the table):
ALTER TABLE "core_recipe" ADD COLUMN "foo" integer DEFAULT 10 NOT NULL;
-- section "Adding a generated column" ("Instead of"; a STORED generated column rewrites the table):
ALTER TABLE "core_recipe" ADD COLUMN "foo" integer GENERATED ALWAYS as ("bar" + "baz") STORED;
-- rule tests (crates/squawk_linter/src/rules/adding_field_with_default.rs: default_volatile_func_err):
ALTER TABLE "core_recipe" ADD COLUMN "foo" boolean DEFAULT random();
