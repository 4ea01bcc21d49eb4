ALTER TABLE `invoices` ADD `paid_at` datetime(6), ADD `status` varchar(255) DEFAULT 'draft' NOT NULL AFTER `number`, ADD INDEX `index_invoices_on_status` (`status`);
INSERT INTO `schema_migrations` (`version`) VALUES ('20261203150100');
