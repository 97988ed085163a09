-- Import at scale (issue 11): on PostgreSQL this migration drops the foreign keys of thumbnails and
-- photos and keeps one text index on thumbnails (migrations/postgres/0015_import_scale.sql). SQLite
-- keeps its schema: it cannot drop a constraint without copying the whole table, its import already
-- meets its goal (65,660 objects/s against 50,000), and its foreign-key check is a probe of the
-- parent's rowid, cheap beside PostgreSQL's per-row trigger. The version exists on both backends so
-- that they stay numbered alike.
SELECT 1;
