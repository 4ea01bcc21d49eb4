--
-- Add field currency to invoice
--
ALTER TABLE `billing_invoice` ADD COLUMN `currency` varchar(3) DEFAULT 'EUR' NOT NULL;
ALTER TABLE `billing_invoice` ALTER COLUMN `currency` DROP DEFAULT;
--
-- Add field due_on to invoice
--
ALTER TABLE `billing_invoice` ADD COLUMN `due_on` date NULL;
--
-- Add field notes to invoice
--
ALTER TABLE `billing_invoice` ADD COLUMN `notes` longtext NOT NULL;
UPDATE `billing_invoice` SET `notes` = '';
CREATE INDEX `billing_invoice_due_on_1c801e6c` ON `billing_invoice` (`due_on`);
