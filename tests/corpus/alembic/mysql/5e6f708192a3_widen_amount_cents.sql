-- Running upgrade 4d5e6f708192 -> 5e6f708192a3

ALTER TABLE billing.invoices MODIFY amount_cents BIGINT NOT NULL;

UPDATE alembic_version SET version_num='5e6f708192a3' WHERE alembic_version.version_num = '4d5e6f708192';

