-- squawk docs "require-timeout-settings":
-- error, missing timeouts
alter table t add column c boolean;
