-- This file should undo anything in `up.sql`
DROP INDEX invoices_status_idx;
ALTER TABLE invoices DROP COLUMN paid_at;
ALTER TABLE invoices DROP COLUMN status;
