ALTER TABLE billing.invoices RENAME COLUMN number TO reference;
