BEGIN;
--
-- Add field customer to invoice
--
ALTER TABLE "billing_invoice" ADD COLUMN "customer_id" bigint NULL REFERENCES "billing_customer" ("id") DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX "billing_invoice_customer_id_12e1ebba" ON "billing_invoice" ("customer_id");
COMMIT;
