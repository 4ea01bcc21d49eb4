ALTER TABLE billing.invoices RENAME COLUMN reference TO number;
