-- squawk docs "ban-uncommitted-transaction", "solution":
begin;
create table users (id bigint);
commit;
