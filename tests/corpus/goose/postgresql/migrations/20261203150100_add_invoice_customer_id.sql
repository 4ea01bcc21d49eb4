-- +goose Up
ALTER TABLE billing.invoices ADD COLUMN customer_id bigint;
ALTER TABLE billing.invoices ADD CONSTRAINT invoices_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES billing.customers (id) NOT VALID;
ALTER TABLE billing.invoices VALIDATE CONSTRAINT invoices_customer_id_fkey;

-- +goose Down
ALTER TABLE billing.invoices DROP COLUMN customer_id;
