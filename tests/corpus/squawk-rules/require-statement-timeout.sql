-- squawk docs "require-statement-timeout":
-- error, missing statement timeout
alter table t add column c boolean;
