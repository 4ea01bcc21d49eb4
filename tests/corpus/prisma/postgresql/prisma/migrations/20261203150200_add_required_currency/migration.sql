/*
  Warnings:

  - Added the required column `currency` to the `Invoice` table without a default value. This is not possible if the table is not empty.

*/
-- AlterTable
ALTER TABLE "billing"."Invoice" ADD COLUMN     "currency" TEXT NOT NULL;
