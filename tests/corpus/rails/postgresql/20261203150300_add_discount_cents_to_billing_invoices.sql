BEGIN;
ALTER TABLE "billing"."invoices" ADD "discount_cents" integer DEFAULT 0 NOT NULL;
ALTER TABLE "billing"."invoices" ADD CONSTRAINT invoices_discount_cents_nonneg CHECK (discount_cents >= 0) NOT VALID;
ALTER TABLE "billing"."invoices" VALIDATE CONSTRAINT "invoices_discount_cents_nonneg";
INSERT INTO "schema_migrations" ("version") VALUES ('20261203150300');
COMMIT;
