BEGIN;

DROP INDEX IF EXISTS billing.invoices_status_idx;
ALTER TABLE billing.invoices DROP COLUMN IF EXISTS paid_at;
ALTER TABLE billing.invoices DROP COLUMN IF EXISTS status;

COMMIT;
