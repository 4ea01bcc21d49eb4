-- AlterTable
ALTER TABLE "billing"."Invoice" ALTER COLUMN "amountCents" SET DATA TYPE BIGINT;
