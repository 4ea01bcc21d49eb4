-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_customer_id_idx ON billing.invoices (customer_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS billing.invoices_customer_id_idx;
