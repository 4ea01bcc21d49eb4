--liquibase formatted sql

--changeset alice:20261203-1
ALTER TABLE billing.invoices ADD COLUMN paid_at TIMESTAMPTZ;
ALTER TABLE billing.invoices ADD COLUMN status VARCHAR(20) DEFAULT 'draft' NOT NULL;
--rollback ALTER TABLE billing.invoices DROP COLUMN status;
--rollback ALTER TABLE billing.invoices DROP COLUMN paid_at;

--changeset alice:20261203-2
ALTER TABLE billing.invoices ADD COLUMN customer_id BIGINT;
ALTER TABLE billing.invoices ADD CONSTRAINT fk_invoices_customer FOREIGN KEY (customer_id) REFERENCES billing.customers (id);
--rollback ALTER TABLE billing.invoices DROP COLUMN customer_id;

--changeset bob:20261203-3 runInTransaction:false
CREATE INDEX CONCURRENTLY idx_invoices_customer_id ON billing.invoices (customer_id);
--rollback DROP INDEX CONCURRENTLY billing.idx_invoices_customer_id;
