-- The fleet: workers register and heartbeat; a worker whose heartbeat is older than the stale
-- limit counts as gone. Timestamps are Unix milliseconds.
CREATE TABLE workers (
    run_name TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at INTEGER,
    stop_reason TEXT,
    PRIMARY KEY (run_name, name)
);

-- Fleet-wide budgets of a run (NULL: the default), shared out among its live workers. Keyed by
-- run name so that workers may set them before the producer creates the run.
CREATE TABLE run_budgets (
    run_name TEXT PRIMARY KEY,
    s3_deletes_per_min INTEGER,
    s3_puts_per_sec INTEGER,
    s3_gets_per_sec INTEGER,
    max_in_flight INTEGER,
    updated_at INTEGER NOT NULL
);

-- What each worker did between two heartbeats: the time series of reports.
CREATE TABLE worker_samples (
    run_name TEXT NOT NULL,
    worker TEXT NOT NULL,
    at INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    jobs INTEGER NOT NULL,
    photos INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    s3_get INTEGER NOT NULL,
    s3_put INTEGER NOT NULL,
    s3_delete_requests INTEGER NOT NULL,
    s3_deleted_objects INTEGER NOT NULL,
    sqs_requests INTEGER NOT NULL,
    db_statements INTEGER NOT NULL,
    throttles INTEGER NOT NULL,
    limiter_wait_ms INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    concurrency INTEGER NOT NULL
);
CREATE INDEX worker_samples_by_run ON worker_samples (run_name, at);

-- Couples in the hands of a worker: a duplicate delivery of a leased couple waits for the lease,
-- which ends when the job records its attempt, when `until` passes, or when its owner is gone.
CREATE TABLE couple_leases (
    run_id INTEGER NOT NULL,
    couple_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (run_id, couple_id)
);
