-- A couple counts complete once, whatever the concurrency (issue 11). Until now the job_attempts
-- trigger counted a couple complete when, after its statement, the couple's complete attempts were
-- exactly those the statement added. Two workers finishing the same couple at once (or a
-- redelivered job recording while the first delivery still does) each saw only their own
-- uncommitted row, so both counted it: `couples complete` drifted above a recount.
--
-- Now the first complete attempt of a couple inserts its (run, couple) row here, and only a row
-- actually inserted counts. The primary key serialises the racers: the second insert of the same
-- key waits for the first transaction, then does nothing if it committed (or inserts if it rolled
-- back). Same table on SQLite (0012_complete_couples.sql), where one writer at a time means the
-- old trigger was right but the table keeps the two backends' repair SQL the same.
CREATE TABLE run_complete_couples (
    run_id BIGINT NOT NULL,
    couple_id BIGINT NOT NULL,
    PRIMARY KEY (run_id, couple_id)
);

INSERT INTO run_complete_couples (run_id, couple_id)
SELECT DISTINCT run_id, couple_id FROM job_attempts
WHERE outcome = 'complete' AND couple_id IS NOT NULL;

-- Catalogs that raced already get their count right, once.
UPDATE run_attempt_counters SET couples_complete = 0;
INSERT INTO run_attempt_counters AS c (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                       s3_delete_requests, s3_deleted_objects, sqs_requests,
                                       db_statements, first_started, last_finished)
SELECT run_id, couple_id % 64, 0, count(*), 0, 0, 0, 0, 0, 0, NULL, NULL
FROM run_complete_couples GROUP BY 1, 2
ON CONFLICT (run_id, shard) DO UPDATE SET couples_complete = excluded.couples_complete;

CREATE OR REPLACE FUNCTION attempts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH first_complete AS (
        INSERT INTO run_complete_couples (run_id, couple_id)
        SELECT DISTINCT run_id, couple_id FROM new_rows
        WHERE outcome = 'complete' AND couple_id IS NOT NULL
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING
        RETURNING run_id, couple_id
    )
    INSERT INTO run_attempt_counters AS c
    SELECT run_id, shard, sum(attempts), sum(complete), sum(s3_get), sum(s3_put),
           sum(s3_delete_requests), sum(s3_deleted_objects), sum(sqs_requests),
           sum(db_statements), min(started_at), max(finished_at)
    FROM (
        SELECT run_id, coalesce(couple_id, 0) % 64 AS shard, 1 AS attempts, 0 AS complete,
               s3_get, s3_put, s3_delete_requests, s3_deleted_objects, sqs_requests,
               db_statements, started_at, finished_at
        FROM new_rows
        UNION ALL
        SELECT run_id, couple_id % 64, 0, 1, 0, 0, 0, 0, 0, 0, NULL, NULL FROM first_complete
    ) a
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (run_id, shard) DO UPDATE SET
        attempts = c.attempts + excluded.attempts,
        couples_complete = c.couples_complete + excluded.couples_complete,
        s3_get = c.s3_get + excluded.s3_get,
        s3_put = c.s3_put + excluded.s3_put,
        s3_delete_requests = c.s3_delete_requests + excluded.s3_delete_requests,
        s3_deleted_objects = c.s3_deleted_objects + excluded.s3_deleted_objects,
        sqs_requests = c.sqs_requests + excluded.sqs_requests,
        db_statements = c.db_statements + excluded.db_statements,
        first_started = LEAST(c.first_started, excluded.first_started),
        last_finished = GREATEST(c.last_finished, excluded.last_finished);
    RETURN NULL;
END $$;
