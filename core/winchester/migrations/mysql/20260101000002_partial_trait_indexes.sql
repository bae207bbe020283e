-- No-op on MySQL/MariaDB (kept so both dialects have the same versions): the
-- SQLite migration of this version turns the trait value indexes into partial
-- indexes, which MySQL does not have.
SELECT 1;
