-- squawk docs "require-statement-timeout":
-- ok, statement timeout configured before ddl operations
set statement_timeout = '5s';
alter table t add column c boolean;
