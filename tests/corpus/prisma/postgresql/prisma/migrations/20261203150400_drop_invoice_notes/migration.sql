/*
  Warnings:

  - You are about to drop the column `notes` on the `Invoice` table. All the data in the column will be lost.

*/
-- AlterTable
ALTER TABLE "billing"."Invoice" DROP COLUMN "notes";
