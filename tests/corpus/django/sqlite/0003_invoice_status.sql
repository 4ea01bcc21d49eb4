BEGIN;
--
-- Add field status to invoice
--
CREATE TABLE "new__billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "status" varchar(20) NOT NULL, "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL, "paid_at" datetime NULL);
INSERT INTO "new__billing_invoice" ("id", "number", "amount_cents", "created_at", "paid_at", "status") SELECT "id", "number", "amount_cents", "created_at", "paid_at", 'draft' FROM "billing_invoice";
DROP TABLE "billing_invoice";
ALTER TABLE "new__billing_invoice" RENAME TO "billing_invoice";
COMMIT;
