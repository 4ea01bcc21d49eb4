alter table `invoices` modify `amount_cents` bigint not null;
