BEGIN;
--
-- Add field paid_at to invoice
--
ALTER TABLE "billing_invoice" ADD COLUMN "paid_at" datetime NULL;
COMMIT;
