-- This file should undo anything in `up.sql`
DROP INDEX invoices_customer_id_idx;
ALTER TABLE invoices DROP COLUMN customer_id;
ALTER TABLE invoices DROP COLUMN paid_at;
