ALTER TABLE billing.invoices ADD COLUMN paid_at timestamptz;
ALTER TABLE billing.invoices ADD COLUMN status varchar(20) NOT NULL DEFAULT 'draft';
