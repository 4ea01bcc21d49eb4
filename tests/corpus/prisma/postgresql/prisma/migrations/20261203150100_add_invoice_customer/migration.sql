-- AlterTable
ALTER TABLE "billing"."Invoice" ADD COLUMN     "customerId" INTEGER;

-- CreateIndex
CREATE INDEX "Invoice_customerId_idx" ON "billing"."Invoice"("customerId");

-- AddForeignKey
ALTER TABLE "billing"."Invoice" ADD CONSTRAINT "Invoice_customerId_fkey" FOREIGN KEY ("customerId") REFERENCES "billing"."Customer"("id") ON DELETE SET NULL ON UPDATE CASCADE;
