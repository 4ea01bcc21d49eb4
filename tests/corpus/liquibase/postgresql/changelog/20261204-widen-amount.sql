--liquibase formatted sql

--changeset bob:20261204-1
ALTER TABLE billing.invoices ALTER COLUMN amount_cents TYPE BIGINT;
--rollback ALTER TABLE billing.invoices ALTER COLUMN amount_cents TYPE INTEGER;
