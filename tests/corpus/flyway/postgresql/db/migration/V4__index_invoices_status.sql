CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_status_idx ON billing.invoices (status);
