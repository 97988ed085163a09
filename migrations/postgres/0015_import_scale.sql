-- Import at scale (issue 11): the per-row costs of inserting a catalog of billions of objects.
-- Measured with pg_stat_statements and EXPLAIN ANALYZE on the 1 M-object inventory benchmark,
-- inserting thumbnails was most of PostgreSQL's time, and in it the foreign-key check (one
-- `SELECT ... FOR KEY SHARE` on photos per thumbnail, ~30% of the statement) and two text indexes
-- over the same key (`PRIMARY KEY (photo_id, key)` and `UNIQUE (key)`). See docs/import.md.

-- The foreign keys thumbnails.photo_id -> photos and photos.couple_id -> couples are dropped.
-- What they guarded is guaranteed by the only code that writes these tables, and checked per row
-- it cost more than the join that already resolves the reference:
-- - the import inserts a photo only with the id of a couple it just joined to (`JOIN couples`), and
--   a thumbnail only with the id of a photo it just joined to (`JOIN photos`), in the same
--   transaction, and `seed` (add_couples) inserts the couples before their photos and the photos
--   before their thumbnails in one transaction;
-- - no code deletes or renumbers couples or photos (thumbnails are deleted from the store, never
--   from the catalog), so a reference cannot dangle later.
-- photo_progress keeps its foreign keys: it is written by the workers, row by row, not in bulk.
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_photo_id_fkey;
ALTER TABLE photos DROP CONSTRAINT photos_couple_id_fkey;

-- One text index on thumbnails instead of two: the key is the primary key (what `UNIQUE (key)`
-- already enforced; the import's `ON CONFLICT DO NOTHING` needs it), and a photo's thumbnails are
-- found through an index on the integer photo_id (what the workers, the counters' triggers and
-- `status --recount` look them up by).
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_pkey;
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_key_key;

-- Keys and external ids compare byte by byte (collation "C"), as S3 orders keys and as SQLite
-- compares text: a B-tree of text keys under a language collation (the database's default, often
-- en_US.UTF-8; even C.UTF-8 is not PostgreSQL's fast path before version 17) calls strcoll for
-- every comparison. Inserting 800,000 thumbnail keys into a primary key took 8.1 s under C.UTF-8
-- and 5.0 s under "C" (one run, loaded machine). Equality is the same under both; only the order
-- of `ORDER BY key` may change, to S3's. The import's batch table declares the same collation, so
-- that its joins use these indexes.
ALTER TABLE couples ALTER COLUMN ext_id TYPE TEXT COLLATE "C";
ALTER TABLE photos ALTER COLUMN ext_id TYPE TEXT COLLATE "C",
    ALTER COLUMN original_key TYPE TEXT COLLATE "C";
ALTER TABLE thumbnails ALTER COLUMN key TYPE TEXT COLLATE "C";
ALTER TABLE import_staging ALTER COLUMN couple TYPE TEXT COLLATE "C",
    ALTER COLUMN photo TYPE TEXT COLLATE "C", ALTER COLUMN key TYPE TEXT COLLATE "C";

ALTER TABLE thumbnails ADD PRIMARY KEY (key);
CREATE INDEX thumbnails_by_photo ON thumbnails (photo_id);
