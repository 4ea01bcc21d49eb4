-- squawk docs "require-lock-timeout":
-- ok, lock timeout configured before ddl operations
set lock_timeout = '1s';
alter table t add column c boolean;
