BEGIN;

ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS status VARCHAR(20) NOT NULL DEFAULT 'draft';
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS paid_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS invoices_status_idx ON billing.invoices (status);

COMMIT;
