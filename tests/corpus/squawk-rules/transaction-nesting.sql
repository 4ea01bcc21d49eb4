-- squawk rule tests (crates/squawk_linter/src/rules/transaction_nesting.rs: begin_repeated_err);
-- the docs page has no SQL.
BEGIN;
BEGIN;
SELECT 1;
COMMIT;
