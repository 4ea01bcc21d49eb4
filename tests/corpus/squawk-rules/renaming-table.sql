-- squawk docs "renaming-table", "rename with minor locking via database views" (the rename itself is
-- what the rule flags):
BEGIN;
DROP VIEW user_favorites;
ALTER TABLE user_stars RENAME TO user_favorites;
COMMIT;
