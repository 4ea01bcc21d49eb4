ALTER TABLE billing.invoices ALTER COLUMN amount_cents TYPE bigint;
