BEGIN;
--
-- Create model Customer
--
CREATE TABLE "billing_customer" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(200) NOT NULL, "email" varchar(254) NOT NULL);
--
-- Create model Invoice
--
CREATE TABLE "billing_invoice" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "number" varchar(32) NOT NULL, "amount_cents" integer NOT NULL, "created_at" datetime NOT NULL);
COMMIT;
