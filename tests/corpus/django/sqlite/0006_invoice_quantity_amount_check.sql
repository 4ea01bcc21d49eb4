BEGIN;
--
-- Add field quantity to invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "quantity" integer unsigned NOT NULL CHECK ("quantity" >= 0), "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL, "status" varchar(20) NOT NULL, "currency" varchar(3) NOT NULL, "due_on" date NULL, "notes" text NOT NULL, "customer_id" bigint NULL REFERENCES "billing_customer" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "new__billing_invoice" ("id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", "quantity") SELECT "id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", 1 FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
CREATE INDEX "billing_invoice_due_on_1c801e6c" ON "billing_invoice" ("due_on");
CREATE INDEX "billing_invoice_customer_id_12e1ebba" ON "billing_invoice" ("customer_id");
--
-- Create constraint invoice_amount_cents_nonneg on model invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL, "status" varchar(20) NOT NULL, "currency" varchar(3) NOT NULL, "due_on" date NULL, "notes" text NOT NULL, "customer_id" bigint NULL REFERENCES "billing_customer" ("id") DEFERRABLE INITIALLY DEFERRED, "quantity" integer unsigned NOT NULL CHECK ("quantity" >= 0), CONSTRAINT "invoice_amount_cents_nonneg" CHECK ("amount_cents" >= 0));
INSERT INTO "new__billing_invoice" ("id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", "quantity") SELECT "id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", "notes", "customer_id", "quantity" FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
CREATE INDEX "billing_invoice_due_on_1c801e6c" ON "billing_invoice" ("due_on");
CREATE INDEX "billing_invoice_customer_id_12e1ebba" ON "billing_invoice" ("customer_id");
COMMIT;
