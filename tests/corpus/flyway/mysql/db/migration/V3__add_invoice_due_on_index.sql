ALTER TABLE billing.invoices ADD COLUMN due_on DATE NULL;
CREATE INDEX invoices_due_on_idx ON billing.invoices (due_on) ALGORITHM=INPLACE LOCK=NONE;
