ALTER TABLE accounts ADD COLUMN active boolean NOT NULL DEFAULT true;
