alter table "invoices" add column "status" varchar(255) check ("status" in ('draft', 'paid', 'void')) not null default 'draft';
alter table "invoices" add column "paid_at" timestamp(0) without time zone null;
create index "invoices_status_index" on "invoices" ("status");
