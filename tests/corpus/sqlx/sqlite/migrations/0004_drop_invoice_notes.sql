-- Add migration script here
ALTER TABLE invoices DROP COLUMN notes;
