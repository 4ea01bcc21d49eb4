-- no-transaction
-- Add down migration script here
DROP INDEX CONCURRENTLY IF EXISTS invoices_customer_id_idx;
