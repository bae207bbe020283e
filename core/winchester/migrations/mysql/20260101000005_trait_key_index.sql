-- No-op on MySQL (kept so both dialects have the same versions): SQLite's
-- integer-key value index (see ../sqlite/20260101000005_trait_key_index.sql)
-- is for its single writer; MySQL keeps the `trait` rows and ix_trait_value.
SELECT 1;
