alter table `users` add `nickname` varchar(50) null after `email`;
alter table `users` add `status` varchar(20) not null default 'active' after `nickname`;
alter table `users` add index `users_status_index`(`status`);
