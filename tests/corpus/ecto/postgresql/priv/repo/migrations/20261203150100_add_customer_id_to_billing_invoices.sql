begin;
ALTER TABLE "billing"."invoices" ADD COLUMN "customer_id" bigint, ADD CONSTRAINT "invoices_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "billing"."customers"("id");
CREATE INDEX "invoices_customer_id_index" ON "billing"."invoices" ("customer_id");
INSERT INTO "schema_migrations" ("version","inserted_at") VALUES (20261203150100,'2026-12-03 15:10:01');
commit;
