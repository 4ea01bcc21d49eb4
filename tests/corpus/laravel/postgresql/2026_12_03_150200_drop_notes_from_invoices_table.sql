alter table "invoices" drop column "notes";
