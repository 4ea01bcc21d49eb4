--liquibase formatted sql

--changeset alice:20261203-users-1
ALTER TABLE users ADD COLUMN nickname VARCHAR(50) NULL AFTER email, ALGORITHM=INSTANT;
--rollback ALTER TABLE users DROP COLUMN nickname;

--changeset alice:20261203-users-2
ALTER TABLE users ADD COLUMN team_id BIGINT NULL, ADD CONSTRAINT fk_users_team FOREIGN KEY (team_id) REFERENCES teams (id);
--rollback ALTER TABLE users DROP FOREIGN KEY fk_users_team, DROP COLUMN team_id;
