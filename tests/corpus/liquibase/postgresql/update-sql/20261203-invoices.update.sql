SET SEARCH_PATH TO public, "$user","public";

-- Lock Database
UPDATE public.databasechangeloglock SET LOCKED = TRUE, LOCKEDBY = 'build-agent-7 (10.0.2.15)', LOCKGRANTED = NOW() WHERE ID = 1 AND LOCKED = FALSE;

SET SEARCH_PATH TO public, "$user","public";

SET SEARCH_PATH TO public, "$user","public";

-- *********************************************************************
-- Update Database Script
-- *********************************************************************
-- Change Log: changelog/20261203-invoices.sql
-- Ran at: 12/3/26, 3:10 PM
-- Against: app@jdbc:postgresql://localhost:5432/app
-- Liquibase version: 4.29.2
-- *********************************************************************

SET SEARCH_PATH TO public, "$user","public";

-- Changeset changelog/20261203-invoices.sql::20261203-1::alice
SET SEARCH_PATH TO public, "$user","public";

ALTER TABLE billing.invoices ADD COLUMN paid_at TIMESTAMPTZ;

ALTER TABLE billing.invoices ADD COLUMN status VARCHAR(20) DEFAULT 'draft' NOT NULL;

INSERT INTO public.databasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES ('20261203-1', 'alice', 'changelog/20261203-invoices.sql', NOW(), 1, '9:3f0d4c2a8b1e6f7a9c0d1e2f3a4b5c6d', 'sql', '', 'EXECUTED', NULL, NULL, '4.29.2', '4997800461');

-- Changeset changelog/20261203-invoices.sql::20261203-2::alice
SET SEARCH_PATH TO public, "$user","public";

ALTER TABLE billing.invoices ADD COLUMN customer_id BIGINT;

ALTER TABLE billing.invoices ADD CONSTRAINT fk_invoices_customer FOREIGN KEY (customer_id) REFERENCES billing.customers (id);

INSERT INTO public.databasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES ('20261203-2', 'alice', 'changelog/20261203-invoices.sql', NOW(), 2, '9:8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d', 'sql', '', 'EXECUTED', NULL, NULL, '4.29.2', '4997800461');

-- Changeset changelog/20261203-invoices.sql::20261203-3::bob
SET SEARCH_PATH TO public, "$user","public";

CREATE INDEX CONCURRENTLY idx_invoices_customer_id ON billing.invoices (customer_id);

INSERT INTO public.databasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES ('20261203-3', 'bob', 'changelog/20261203-invoices.sql', NOW(), 3, '9:1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f', 'sql', '', 'EXECUTED', NULL, NULL, '4.29.2', '4997800461');

-- Release Database Lock
SET SEARCH_PATH TO public, "$user","public";

UPDATE public.databasechangeloglock SET LOCKED = FALSE, LOCKEDBY = NULL, LOCKGRANTED = NULL WHERE ID = 1;

SET SEARCH_PATH TO public, "$user","public";

