ALTER TABLE orders ADD COLUMN flagged boolean NOT NULL DEFAULT false;
