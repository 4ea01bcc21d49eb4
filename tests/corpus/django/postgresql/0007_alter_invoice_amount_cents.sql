BEGIN;
--
-- Alter field amount_cents on invoice
--
ALTER TABLE "billing_invoice" ALTER COLUMN "amount_cents" TYPE bigint USING "amount_cents"::bigint;
COMMIT;
