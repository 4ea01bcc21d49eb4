--
-- Alter field amount_cents on invoice
--
ALTER TABLE `billing_invoice` MODIFY `amount_cents` bigint NOT NULL;
