BEGIN;
ALTER TABLE "invoices" RENAME COLUMN "number" TO "reference";
INSERT INTO "schema_migrations" ("version") VALUES ('20261203150500');
COMMIT;
