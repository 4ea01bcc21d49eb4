-- AlterTable
ALTER TABLE `Invoice` ADD COLUMN `paidAt` DATETIME(3) NULL,
    ADD COLUMN `status` VARCHAR(191) NOT NULL DEFAULT 'draft';

-- CreateIndex
CREATE INDEX `Invoice_status_idx` ON `Invoice`(`status`);
