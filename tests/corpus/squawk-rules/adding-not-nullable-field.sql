-- squawk docs "adding-not-nullable-field", "setting an existing column as non-nullable" ("Instead of"):
ALTER TABLE "recipe" ALTER COLUMN "view_count" SET NOT NULL;
