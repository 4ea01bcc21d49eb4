BEGIN;
ALTER TABLE "invoices" ALTER COLUMN "amount_cents" TYPE bigint;
INSERT INTO "schema_migrations" ("version") VALUES ('20261203150400');
COMMIT;
