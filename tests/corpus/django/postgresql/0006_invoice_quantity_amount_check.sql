BEGIN;
--
-- Add field quantity to invoice
--
ALTER TABLE "billing_invoice" ADD COLUMN "quantity" integer DEFAULT 1 NOT NULL CHECK ("quantity" >= 0);
ALTER TABLE "billing_invoice" ALTER COLUMN "quantity" DROP DEFAULT;
--
-- Create constraint invoice_amount_cents_nonneg on model invoice
--
ALTER TABLE "billing_invoice" ADD CONSTRAINT "invoice_amount_cents_nonneg" CHECK ("amount_cents" >= 0);
COMMIT;
