--
-- Create model Customer
--
CREATE TABLE `billing_customer` (`id` bigint AUTO_INCREMENT NOT NULL PRIMARY KEY, `name` varchar(200) NOT NULL, `email` varchar(254) NOT NULL);
--
-- Create model Invoice
--
CREATE TABLE `billing_invoice` (`id` bigint AUTO_INCREMENT NOT NULL PRIMARY KEY, `number` varchar(32) NOT NULL, `amount_cents` integer NOT NULL, `created_at` datetime(6) NOT NULL);
