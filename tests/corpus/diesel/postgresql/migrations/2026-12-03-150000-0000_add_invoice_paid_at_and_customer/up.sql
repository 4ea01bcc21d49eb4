-- Your SQL goes here
ALTER TABLE invoices ADD COLUMN paid_at TIMESTAMPTZ;
ALTER TABLE invoices ADD COLUMN customer_id INTEGER REFERENCES customers(id);
CREATE INDEX invoices_customer_id_idx ON invoices (customer_id);
