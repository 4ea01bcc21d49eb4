-- squawk docs "adding-required-field", "allow null values initially":
ALTER TABLE "recipe" ADD COLUMN "public" boolean;
-- "set a non-volatile default":
ALTER TABLE "recipe" ADD COLUMN "public" boolean NOT NULL DEFAULT false;
