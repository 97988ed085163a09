-- The photo catalog (what exists) and the progress ledger (what each run did to it).
-- Timestamps are Unix milliseconds. The same schema as migrations/sqlite, in PostgreSQL types.

CREATE TABLE couples (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE photos (
    id BIGINT PRIMARY KEY,
    couple_id BIGINT NOT NULL REFERENCES couples (id),
    original_key TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    width BIGINT,
    height BIGINT
);
CREATE INDEX photos_by_couple ON photos (couple_id, id);

CREATE TABLE thumbnails (
    photo_id BIGINT NOT NULL REFERENCES photos (id),
    key TEXT NOT NULL UNIQUE,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (photo_id, key)
);

CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per photo that a run has recorded anything for; no row means pending.
CREATE TABLE photo_progress (
    run_id BIGINT NOT NULL REFERENCES runs (id),
    photo_id BIGINT NOT NULL REFERENCES photos (id),
    couple_id BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('switched', 'thumbs_gone', 'done', 'failed')),
    webp_key TEXT,
    webp_bytes BIGINT,
    webp_crc32c BIGINT,
    failure_reason TEXT,
    failure_detail TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sweep_owner TEXT,
    sweep_until BIGINT,
    PRIMARY KEY (run_id, photo_id),
    CHECK ((state = 'failed') = (failure_reason IS NOT NULL)),
    CHECK (state = 'failed' OR webp_key IS NOT NULL)
);
CREATE INDEX photo_progress_by_couple ON photo_progress (run_id, couple_id);
CREATE INDEX photo_progress_to_sweep ON photo_progress (run_id, state, photo_id);

-- The producer's position: every couple with id <= last_couple_id has been enqueued for the run.
CREATE TABLE producer_checkpoints (
    run_id BIGINT PRIMARY KEY REFERENCES runs (id),
    last_couple_id BIGINT NOT NULL,
    enqueued BIGINT NOT NULL,
    finished BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- One row per attempt at a job (couple_id NULL: requests not tied to one job), with the requests
-- it made by service.
CREATE TABLE job_attempts (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id),
    couple_id BIGINT,
    worker TEXT NOT NULL,
    outcome TEXT NOT NULL,
    photos BIGINT NOT NULL,
    s3_get BIGINT NOT NULL,
    s3_put BIGINT NOT NULL,
    s3_delete_requests BIGINT NOT NULL,
    s3_deleted_objects BIGINT NOT NULL,
    sqs_requests BIGINT NOT NULL,
    db_statements BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX job_attempts_by_run ON job_attempts (run_id, couple_id);
