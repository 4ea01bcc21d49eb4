BEGIN;
--
-- Add field currency to invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "currency" varchar(3) NOT NULL, "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL, "status" varchar(20) NOT NULL);
INSERT INTO "new__billing_invoice" ("id", "number", "amount_cents", "created_at", "paid_at", "status", "currency") SELECT "id", "number", "amount_cents", "created_at", "paid_at", "status", 'EUR' FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
--
-- Add field due_on to invoice
--
ALTER TABLE "billing_invoice" ADD COLUMN "due_on" date NULL;
--
-- Add field notes to invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL, "status" varchar(20) NOT NULL, "currency" varchar(3) NOT NULL, "due_on" date NULL, "notes" text NOT NULL);
INSERT INTO "new__billing_invoice" ("id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", "notes") SELECT "id", "number", "amount_cents", "created_at", "paid_at", "status", "currency", "due_on", '' FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
CREATE INDEX "billing_invoice_due_on_1c801e6c" ON "billing_invoice" ("due_on");
COMMIT;
