-- Import (issue 11): the app's own ids kept as text beside the internal integer ids, the staging
-- area of imports and their checkpoints. Same statements as migrations/postgres/0010_import.sql
-- except for the column types.

-- External ids: what the app calls its couples and photos (numeric, UUID, hex: any text). Rows that
-- existed before get their integer id as text; a photo's id is unique within its couple.
ALTER TABLE couples ADD COLUMN ext_id TEXT;
ALTER TABLE photos ADD COLUMN ext_id TEXT;
UPDATE couples SET ext_id = CAST(id AS TEXT) WHERE ext_id IS NULL;
UPDATE photos SET ext_id = CAST(id AS TEXT) WHERE ext_id IS NULL;
CREATE UNIQUE INDEX couples_by_ext_id ON couples (ext_id);
CREATE UNIQUE INDEX photos_by_ext_id ON photos (couple_id, ext_id);

-- Objects read by an import and not yet resolved into couples, photos and thumbnails. `unit` is
-- the inventory file, listing page or manifest chunk they came from: the rows of a unit past the
-- checkpoint are discarded on resume, so a unit is imported whole or not at all.
CREATE TABLE import_staging (
    source TEXT NOT NULL,
    unit INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('original', 'thumbnail')),
    couple TEXT NOT NULL,
    photo TEXT NOT NULL,
    format TEXT,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX import_staging_by_unit ON import_staging (source, unit);

-- Where an import stands: every unit below `units_done` is staged; `cursor` is what the source
-- needs to continue (the last listed key); `summary` the counts so far (JSON).
CREATE TABLE import_checkpoints (
    source TEXT PRIMARY KEY,
    units_done INTEGER NOT NULL,
    cursor TEXT,
    summary TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
