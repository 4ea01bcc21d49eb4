-- Add migration script here
ALTER TABLE invoices ADD COLUMN paid_at TEXT;
ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'draft';
CREATE INDEX idx_invoices_status ON invoices (status);
