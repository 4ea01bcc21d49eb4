alter table "invoices" add column "customer_id" bigint null;
alter table "invoices" add constraint "invoices_customer_id_foreign" foreign key ("customer_id") references "customers" ("id");
