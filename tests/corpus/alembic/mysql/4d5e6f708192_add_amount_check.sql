-- Running upgrade 3c4d5e6f7081 -> 4d5e6f708192

ALTER TABLE billing.invoices ADD COLUMN discount_cents INTEGER NOT NULL DEFAULT 0;

ALTER TABLE billing.invoices ADD CONSTRAINT ck_invoices_discount_cents_nonneg CHECK (discount_cents >= 0);

UPDATE alembic_version SET version_num='4d5e6f708192' WHERE alembic_version.version_num = '3c4d5e6f7081';

