DROP INDEX idx_users_nickname ON users;
ALTER TABLE users DROP COLUMN nickname;
