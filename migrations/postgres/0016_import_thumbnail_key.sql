-- Import at scale, continued (issue 11): one index on thumbnails instead of two, in the order the
-- import appends to it. See docs/import.md "Import at scale".
--
-- Every reader of thumbnails finds them by their photo (the workers' couple_photos and
-- couples_after, export, the counters' triggers, status --recount: `t.photo_id = p.id`, ordered
-- by key); the only use of the key alone was its uniqueness, which the import's
-- `ON CONFLICT DO NOTHING` leaned on to import the same objects twice without adding them twice.
-- A primary key (photo_id, key) serves both: the readers' lookups and order, and the import's
-- idempotence (an object listed again is listed for the same photo, so it is the same pair).
-- What it no longer refuses is one key listed as a thumbnail of two different photos (only an app
-- manifest, `csv:`, can say that; patterns derive the photo from the key): the object is then a
-- thumbnail of both, deleted after either is switched, and the originals are untouched by that.
--
-- Why it pays: 5 of 6 imported objects are thumbnails, and each paid two B-tree inserts, one of
-- them a descent through text keys to a place anywhere in the index (S3 order is not the order
-- photos are numbered in). Under (photo_id, key) an import's new thumbnails have the highest
-- photo ids, so each insert lands on the rightmost leaf, which PostgreSQL reaches without a
-- descent; and the rows are half as many index entries.
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_pkey;
DROP INDEX thumbnails_by_photo;
ALTER TABLE thumbnails ADD PRIMARY KEY (photo_id, key);
