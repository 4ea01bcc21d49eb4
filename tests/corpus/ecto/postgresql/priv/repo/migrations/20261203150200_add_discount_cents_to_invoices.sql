begin;
ALTER TABLE "invoices" ADD COLUMN "discount_cents" integer DEFAULT 0 NOT NULL;
ALTER TABLE "invoices" ADD CONSTRAINT "discount_cents_must_not_be_negative" CHECK (discount_cents >= 0) NOT VALID;
INSERT INTO "schema_migrations" ("version","inserted_at") VALUES (20261203150200,'2026-12-03 15:10:02');
commit;
