-- squawk docs "adding-serial-primary-key-field" ("Instead of"):
-- blocks reads and writes to "account" table while constraint is added.
ALTER TABLE account ADD PRIMARY KEY (id);
