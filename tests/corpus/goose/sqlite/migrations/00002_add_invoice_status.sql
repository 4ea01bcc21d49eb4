-- +goose Up
-- +goose StatementBegin
ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent', 'paid'));
-- +goose StatementEnd
-- +goose StatementBegin
CREATE INDEX invoices_status_idx ON invoices (status);
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP INDEX invoices_status_idx;
-- +goose StatementEnd
-- +goose StatementBegin
ALTER TABLE invoices DROP COLUMN status;
-- +goose StatementEnd
