BEGIN;
--
-- Alter field amount_cents on invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "amount_cents" bigint NOT NULL, "number" varchar(32) NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL, "status" varchar(20) NOT NULL, "currency" varchar(3) NOT NULL, "due_on" date NULL, "notes" text NOT NULL, "customer_id" bigint NULL REFERENCES "billing_customer" ("id") DEFERRABLE INITIALLY DEFERRED, "quantity" integer unsigned NOT NULL CHECK ("quantity" >= 0), CONSTRAINT "invoice_amount_cents_nonneg" CHECK ("amount_cents" >= 0));
INSERT INTO "new__billing_invoice" ("id", "number", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", "quantity", "amount_cents") SELECT "id", "number", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", "quantity", "amount_cents" FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
CREATE INDEX "billing_invoice_due_on_1c801e6c" ON "billing_invoice" ("due_on");
CREATE INDEX "billing_invoice_customer_id_12e1ebba" ON "billing_invoice" ("customer_id");
COMMIT;
