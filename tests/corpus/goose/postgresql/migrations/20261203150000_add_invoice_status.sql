-- +goose Up
-- +goose StatementBegin
SELECT 'up SQL query';

SET search_path = billing, public;

ALTER TABLE invoices ADD COLUMN status varchar(20) NOT NULL DEFAULT 'draft';
ALTER TABLE invoices ADD COLUMN paid_at timestamptz;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
SELECT 'down SQL query';

SET search_path = billing, public;

ALTER TABLE invoices DROP COLUMN paid_at;
ALTER TABLE invoices DROP COLUMN status;
-- +goose StatementEnd
