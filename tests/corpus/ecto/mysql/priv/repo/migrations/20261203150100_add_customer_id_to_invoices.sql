ALTER TABLE `invoices` ADD `customer_id` BIGINT UNSIGNED AFTER `number`, ADD CONSTRAINT `invoices_customer_id_fkey` FOREIGN KEY (`customer_id`) REFERENCES `customers`(`id`), ADD `status` varchar(255) DEFAULT 'draft' NOT NULL;
CREATE INDEX `invoices_customer_id_index` ON `invoices` (`customer_id`);
INSERT INTO `schema_migrations` (`version`,`inserted_at`) VALUES (20261203150100,'2026-12-03 15:10:01');
