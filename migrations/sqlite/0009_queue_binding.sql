-- A run is bound to the queue its launch enqueued into: a later launch or worker of the run with
-- another queue is refused (a typo'd queue would otherwise silently receive every message).
CREATE TABLE run_queues (
    run_id BIGINT PRIMARY KEY REFERENCES runs (id),
    queue_url TEXT NOT NULL,
    bound_at BIGINT NOT NULL
);
