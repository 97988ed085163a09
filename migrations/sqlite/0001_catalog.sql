-- The photo catalog (what exists) and the progress ledger (what each run did to it).
-- Timestamps are Unix milliseconds.

CREATE TABLE couples (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    couple_id INTEGER NOT NULL REFERENCES couples (id),
    original_key TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER,
    height INTEGER
);
CREATE INDEX photos_by_couple ON photos (couple_id, id);

CREATE TABLE thumbnails (
    photo_id INTEGER NOT NULL REFERENCES photos (id),
    key TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (photo_id, key)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One row per photo that a run has recorded anything for; no row means pending.
CREATE TABLE photo_progress (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    photo_id INTEGER NOT NULL REFERENCES photos (id),
    couple_id INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('switched', 'thumbs_gone', 'done', 'failed')),
    webp_key TEXT,
    webp_bytes INTEGER,
    webp_crc32c INTEGER,
    failure_reason TEXT,
    failure_detail TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, photo_id),
    CHECK ((state = 'failed') = (failure_reason IS NOT NULL)),
    CHECK (state = 'failed' OR webp_key IS NOT NULL)
);
CREATE INDEX photo_progress_by_couple ON photo_progress (run_id, couple_id);

-- The producer's position: every couple with id <= last_couple_id has been enqueued for the run.
CREATE TABLE producer_checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id),
    last_couple_id INTEGER NOT NULL,
    enqueued INTEGER NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- One row per attempt at a job (couple_id NULL: a worker's requests not tied to one job),
-- with the requests it made by service.
CREATE TABLE job_attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    couple_id INTEGER,
    worker TEXT NOT NULL,
    outcome TEXT NOT NULL,
    photos INTEGER NOT NULL,
    s3_get INTEGER NOT NULL,
    s3_put INTEGER NOT NULL,
    s3_delete_requests INTEGER NOT NULL,
    s3_deleted_objects INTEGER NOT NULL,
    sqs_requests INTEGER NOT NULL,
    db_statements INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE INDEX job_attempts_by_run ON job_attempts (run_id, couple_id);
