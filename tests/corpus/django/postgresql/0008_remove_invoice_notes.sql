BEGIN;
--
-- Remove field notes from invoice
--
ALTER TABLE "billing_invoice" DROP COLUMN "notes" CASCADE;
COMMIT;
