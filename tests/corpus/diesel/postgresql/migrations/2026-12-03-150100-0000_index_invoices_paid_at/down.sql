-- This file should undo anything in `up.sql`
DROP INDEX CONCURRENTLY invoices_paid_at_idx;
