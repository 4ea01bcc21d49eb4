ALTER TABLE users ADD COLUMN nickname VARCHAR(50) NULL AFTER email;
CREATE INDEX idx_users_nickname ON users (nickname);
