-- squawk docs "adding-not-nullable-field", "setting an existing column as non-nullable" ("Use"):
ALTER TABLE "recipe" ADD CONSTRAINT view_count_not_null
    CHECK ("view_count" IS NOT NULL) NOT VALID;

-- Backfill column so it's not null
-- Update ...

ALTER TABLE "recipe" VALIDATE CONSTRAINT view_count_not_null;

-- If pg version >= 12, set not null without doing a table scan
ALTER TABLE table_name ALTER COLUMN column_name SET NOT NULL;
