-- Add down migration script here
ALTER TABLE invoices DROP COLUMN customer_id;
ALTER TABLE invoices DROP COLUMN status;
ALTER TABLE invoices DROP COLUMN paid_at;
