ALTER TABLE `invoices` DROP COLUMN `notes`;
INSERT INTO `schema_migrations` (`version`) VALUES ('20261203150600');
