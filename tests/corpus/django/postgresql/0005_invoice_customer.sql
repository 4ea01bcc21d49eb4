BEGIN;
--
-- Add field customer to invoice
--
ALTER TABLE "billing_invoice" ADD COLUMN "customer_id" bigint NULL CONSTRAINT "billing_invoice_customer_id_12e1ebba_fk_billing_customer_id" REFERENCES "billing_customer"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "billing_invoice_customer_id_12e1ebba_fk_billing_customer_id" IMMEDIATE;
CREATE INDEX "billing_invoice_customer_id_12e1ebba" ON "billing_invoice" ("customer_id");
COMMIT;
