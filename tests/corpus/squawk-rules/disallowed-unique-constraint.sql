-- squawk docs "disallowed-unique-constraint" (first "Instead of" block; the second one,
-- `ADD COLUMN dist_id text CONSTRAINT dist_id_uniq UNIQUE (dist_id)`, is not valid PostgreSQL — a column
-- constraint takes no column list — and squawk reports it as a syntax error, so it is left out):
-- blocks reads and writes to table_name while constraint is validated.
ALTER TABLE distributors ADD CONSTRAINT dist_id_uniq UNIQUE (dist_id);
