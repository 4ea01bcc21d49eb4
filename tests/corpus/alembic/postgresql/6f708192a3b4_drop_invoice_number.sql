BEGIN;

-- Running upgrade 5e6f708192a3 -> 6f708192a3b4

ALTER TABLE billing.invoices DROP COLUMN number;

UPDATE alembic_version SET version_num='6f708192a3b4' WHERE alembic_version.version_num = '5e6f708192a3';

COMMIT;

