-- Your SQL goes here
CREATE INDEX CONCURRENTLY invoices_paid_at_idx ON invoices (paid_at);
