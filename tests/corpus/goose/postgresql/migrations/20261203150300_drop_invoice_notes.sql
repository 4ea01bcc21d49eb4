-- +goose Up
-- +goose StatementBegin
ALTER TABLE billing.invoices DROP COLUMN notes;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE billing.invoices ADD COLUMN notes text;
-- +goose StatementEnd
