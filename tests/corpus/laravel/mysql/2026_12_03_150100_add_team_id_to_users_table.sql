alter table `users` add `team_id` bigint unsigned null after `id`;
alter table `users` add constraint `users_team_id_foreign` foreign key (`team_id`) references `teams` (`id`);
