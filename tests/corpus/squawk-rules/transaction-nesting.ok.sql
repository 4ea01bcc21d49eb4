-- squawk rule tests (transaction_nesting.rs: no_nesting_ok)
BEGIN;
SELECT 1;
COMMIT;
