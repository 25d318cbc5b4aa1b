-- See migrations/postgres/0009_statement_refunds.sql.
ALTER TABLE statement_items ADD COLUMN original_txn TEXT;
