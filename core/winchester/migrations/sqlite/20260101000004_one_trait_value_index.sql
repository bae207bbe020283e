-- No-op on SQLite (kept so both dialects have the same versions): its trait
-- value indexes are already partial (migration 2), one b-tree insert per row.
SELECT 1;
