-- squawk docs "ban-uncommitted-transaction", "problem":
begin;
create table users (id bigint);
-- missing `commit`!
