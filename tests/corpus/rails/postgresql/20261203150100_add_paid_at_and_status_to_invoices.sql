BEGIN;
ALTER TABLE "invoices" ADD "paid_at" timestamp(6), ADD "status" character varying DEFAULT 'draft' NOT NULL;
CREATE INDEX "index_invoices_on_status" ON "invoices" ("status");
INSERT INTO "schema_migrations" ("version") VALUES ('20261203150100');
COMMIT;
