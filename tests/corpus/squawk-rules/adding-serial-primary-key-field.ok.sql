-- squawk docs "adding-serial-primary-key-field" ("Use"):
-- allows reads and writes while index is built
CREATE UNIQUE INDEX CONCURRENTLY account_pk_idx ON account (id);
-- blocks reads and writes while table schema is updated (fast)
ALTER TABLE account ADD CONSTRAINT account_pk PRIMARY KEY USING INDEX account_pk_idx;
