BEGIN;
--
-- Rename field number on invoice to reference
--
ALTER TABLE "billing_invoice" RENAME COLUMN "number" TO "reference";
COMMIT;
