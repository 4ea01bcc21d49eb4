-- squawk docs "require-lock-timeout":
-- error, missing lock timeout
alter table t add column c boolean;
