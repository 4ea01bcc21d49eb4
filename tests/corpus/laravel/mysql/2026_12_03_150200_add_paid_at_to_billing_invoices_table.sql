alter table `billing`.`invoices` add `paid_at` timestamp null;
alter table `billing`.`invoices` add index `billing_invoices_paid_at_index`(`paid_at`);
