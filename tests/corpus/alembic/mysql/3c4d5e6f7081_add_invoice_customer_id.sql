-- Running upgrade 2b3c4d5e6f70 -> 3c4d5e6f7081

ALTER TABLE billing.invoices ADD COLUMN customer_id INTEGER;

CREATE INDEX ix_billing_invoices_customer_id ON billing.invoices (customer_id);

ALTER TABLE billing.invoices ADD CONSTRAINT fk_invoices_customer_id_customers FOREIGN KEY(customer_id) REFERENCES billing.customers (id);

UPDATE alembic_version SET version_num='3c4d5e6f7081' WHERE alembic_version.version_num = '2b3c4d5e6f70';

