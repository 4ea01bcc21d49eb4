-- Add up migration script here
ALTER TABLE invoices ADD COLUMN paid_at TIMESTAMPTZ;
ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent', 'paid'));
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS customer_id BIGINT REFERENCES customers (id);
