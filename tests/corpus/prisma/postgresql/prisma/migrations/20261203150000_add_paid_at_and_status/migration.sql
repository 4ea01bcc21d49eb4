-- AlterTable
ALTER TABLE "billing"."Invoice" ADD COLUMN     "paidAt" TIMESTAMP(3),
ADD COLUMN     "status" TEXT NOT NULL DEFAULT 'draft';

-- CreateIndex
CREATE INDEX "Invoice_status_idx" ON "billing"."Invoice"("status");
