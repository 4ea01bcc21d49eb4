begin;
ALTER TABLE "invoices" ADD COLUMN "paid_at" timestamp(0), ADD COLUMN "status" varchar(255) DEFAULT 'draft' NOT NULL;
CREATE INDEX "invoices_status_index" ON "invoices" ("status");
INSERT INTO "schema_migrations" ("version","inserted_at") VALUES (20261203150000,'2026-12-03 15:10:00');
commit;
