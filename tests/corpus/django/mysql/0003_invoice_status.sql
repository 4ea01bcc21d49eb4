--
-- Add field status to invoice
--
ALTER TABLE `billing_invoice` ADD COLUMN `status` varchar(20) DEFAULT 'draft' NOT NULL;
ALTER TABLE `billing_invoice` ALTER COLUMN `status` DROP DEFAULT;
