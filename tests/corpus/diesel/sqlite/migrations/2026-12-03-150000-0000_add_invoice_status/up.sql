-- Your SQL goes here
ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'draft';
ALTER TABLE invoices ADD COLUMN paid_at TIMESTAMP;
CREATE INDEX invoices_status_idx ON invoices (status);
