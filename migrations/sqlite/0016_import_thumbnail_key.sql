-- Import at scale, continued (issue 11): on PostgreSQL this migration makes (photo_id, key) the one
-- index of thumbnails (migrations/postgres/0016_import_thumbnail_key.sql). SQLite keeps its schema
-- (the same primary key, plus `UNIQUE (key)`): changing it would copy the whole table, and its
-- import meets its goal. The version exists on both backends so that they stay numbered alike.
SELECT 1;
