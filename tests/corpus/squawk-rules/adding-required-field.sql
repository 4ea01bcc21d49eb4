-- squawk docs "adding-required-field", "problem":
ALTER TABLE "recipe" ADD COLUMN "public" boolean NOT NULL;
