BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 1a2b3c4d5e6f

CREATE TABLE billing.customers (
    id SERIAL NOT NULL, 
    email VARCHAR(255) NOT NULL, 
    PRIMARY KEY (id)
);

CREATE TABLE billing.invoices (
    id SERIAL NOT NULL, 
    number VARCHAR(32) NOT NULL, 
    amount_cents INTEGER NOT NULL, 
    PRIMARY KEY (id)
);

INSERT INTO alembic_version (version_num) VALUES ('1a2b3c4d5e6f') RETURNING alembic_version.version_num;

-- Running upgrade 1a2b3c4d5e6f -> 2b3c4d5e6f70

ALTER TABLE billing.invoices ADD COLUMN paid_at TIMESTAMP WITH TIME ZONE;

ALTER TABLE billing.invoices ADD COLUMN status VARCHAR(20) DEFAULT 'draft' NOT NULL;

UPDATE alembic_version SET version_num='2b3c4d5e6f70' WHERE alembic_version.version_num = '1a2b3c4d5e6f';

COMMIT;

