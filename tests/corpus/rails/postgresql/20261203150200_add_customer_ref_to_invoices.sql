BEGIN;
ALTER TABLE "invoices" ADD "customer_id" bigint;
CREATE INDEX "index_invoices_on_customer_id" ON "invoices" ("customer_id");
ALTER TABLE "invoices" ADD CONSTRAINT "fk_rails_0d349e632f"
FOREIGN KEY ("customer_id")
  REFERENCES "customers" ("id")
;
INSERT INTO "schema_migrations" ("version") VALUES ('20261203150200');
COMMIT;
