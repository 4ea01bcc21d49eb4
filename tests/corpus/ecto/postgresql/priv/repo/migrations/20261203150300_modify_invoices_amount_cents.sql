begin;
ALTER TABLE "invoices" ALTER COLUMN "amount_cents" TYPE bigint;
INSERT INTO "schema_migrations" ("version","inserted_at") VALUES (20261203150300,'2026-12-03 15:10:03');
commit;
