-- A refund line of a statement names the payment it refunds: kept with a lost refund, so it can
-- be recovered into a refund of that payment (docs/payments.md).
ALTER TABLE statement_items ADD COLUMN original_txn text COLLATE "C";
