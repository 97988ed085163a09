-- The fleet: workers register and heartbeat; a worker whose heartbeat is older than the stale
-- limit counts as gone. Timestamps are Unix milliseconds. Same as migrations/sqlite/0004_fleet.sql.
CREATE TABLE workers (
    run_name TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT,
    stop_reason TEXT,
    PRIMARY KEY (run_name, name)
);

-- Fleet-wide budgets of a run (NULL: the default), shared out among its live workers. Keyed by
-- run name so that workers may set them before the producer creates the run.
CREATE TABLE run_budgets (
    run_name TEXT PRIMARY KEY,
    s3_deletes_per_min BIGINT,
    s3_puts_per_sec BIGINT,
    s3_gets_per_sec BIGINT,
    max_in_flight BIGINT,
    updated_at BIGINT NOT NULL
);

-- What each worker did between two heartbeats: the time series of reports.
CREATE TABLE worker_samples (
    run_name TEXT NOT NULL,
    worker TEXT NOT NULL,
    at BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    jobs BIGINT NOT NULL,
    photos BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    s3_get BIGINT NOT NULL,
    s3_put BIGINT NOT NULL,
    s3_delete_requests BIGINT NOT NULL,
    s3_deleted_objects BIGINT NOT NULL,
    sqs_requests BIGINT NOT NULL,
    db_statements BIGINT NOT NULL,
    throttles BIGINT NOT NULL,
    limiter_wait_ms BIGINT NOT NULL,
    in_flight BIGINT NOT NULL,
    concurrency BIGINT NOT NULL
);
CREATE INDEX worker_samples_by_run ON worker_samples (run_name, at);

-- Couples in the hands of a worker: a duplicate delivery of a leased couple waits for the lease,
-- which ends when the job records its attempt, when `until` passes, or when its owner is gone.
CREATE TABLE couple_leases (
    run_id BIGINT NOT NULL,
    couple_id BIGINT NOT NULL,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (run_id, couple_id)
);
