-- squawk docs "require-timeout-settings":
-- ok, timeouts configured before ddl operations
set lock_timeout = '1s';
set statement_timeout = '5s';
alter table t add column c boolean;
