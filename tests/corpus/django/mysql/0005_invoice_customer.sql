--
-- Add field customer to invoice
--
ALTER TABLE `billing_invoice` ADD COLUMN `customer_id` bigint NULL , ADD CONSTRAINT `billing_invoice_customer_id_12e1ebba_fk_billing_customer_id` FOREIGN KEY (`customer_id`) REFERENCES `billing_customer`(`id`);
