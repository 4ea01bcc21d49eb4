-- Add migration script here
ALTER TABLE invoices ADD COLUMN customer_id INTEGER REFERENCES customers (id);
