-- Link every invoice to the customer it bills.
ALTER TABLE billing.invoices ADD COLUMN customer_id bigint REFERENCES billing.customers (id);
CREATE INDEX invoices_customer_id_idx ON billing.invoices (customer_id);
