-- SQLite only: each trait row sets exactly one typed column, so index only the
-- rows that have a value (partial indexes). An insert then touches the primary
-- key and ONE value index instead of four; lookups `name = ? AND t_x = ?` still
-- use them (t_x = ? implies t_x IS NOT NULL). MySQL has no partial indexes; its
-- migration of the same version is a no-op.
DROP INDEX ix_trait_string;
DROP INDEX ix_trait_int;
DROP INDEX ix_trait_float;
DROP INDEX ix_trait_datetime;
CREATE INDEX ix_trait_string ON "trait" (name, t_string) WHERE t_string IS NOT NULL;
CREATE INDEX ix_trait_int ON "trait" (name, t_int) WHERE t_int IS NOT NULL;
CREATE INDEX ix_trait_float ON "trait" (name, t_float) WHERE t_float IS NOT NULL;
CREATE INDEX ix_trait_datetime ON "trait" (name, t_datetime) WHERE t_datetime IS NOT NULL;
