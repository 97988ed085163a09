-- A couple counts complete once (issue 11): the first complete attempt of a couple inserts its
-- (run, couple) row here, and only a row actually inserted counts. Same table as
-- migrations/postgres/0012_complete_couples.sql, where the primary key is what serialises two
-- workers finishing the same couple at once; SQLite has one writer at a time, so its old trigger
-- was right, but both backends now count the same way and share the repair SQL.
CREATE TABLE run_complete_couples (
    run_id BIGINT NOT NULL,
    couple_id BIGINT NOT NULL,
    PRIMARY KEY (run_id, couple_id)
);

INSERT INTO run_complete_couples (run_id, couple_id)
SELECT DISTINCT run_id, couple_id FROM job_attempts
WHERE outcome = 'complete' AND couple_id IS NOT NULL;

-- A row inserted (not ignored) is a couple complete for the first time.
CREATE TRIGGER complete_couple_counted AFTER INSERT ON run_complete_couples BEGIN
    INSERT INTO run_attempt_counters (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                      s3_delete_requests, s3_deleted_objects, sqs_requests,
                                      db_statements, first_started, last_finished)
    VALUES (NEW.run_id, 0, 0, 1, 0, 0, 0, 0, 0, 0, NULL, NULL)
    ON CONFLICT (run_id, shard) DO UPDATE SET couples_complete = couples_complete + 1;
END;

-- Job attempts: summed per run; the couple goes to run_complete_couples, which counts it.
DROP TRIGGER attempts_inserted;
CREATE TRIGGER attempts_inserted AFTER INSERT ON job_attempts BEGIN
    INSERT INTO run_attempt_counters (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                      s3_delete_requests, s3_deleted_objects, sqs_requests,
                                      db_statements, first_started, last_finished)
    VALUES (NEW.run_id, 0, 1, 0, NEW.s3_get, NEW.s3_put, NEW.s3_delete_requests,
            NEW.s3_deleted_objects, NEW.sqs_requests, NEW.db_statements, NEW.started_at,
            NEW.finished_at)
    ON CONFLICT (run_id, shard) DO UPDATE SET
        attempts = attempts + 1,
        s3_get = s3_get + excluded.s3_get,
        s3_put = s3_put + excluded.s3_put,
        s3_delete_requests = s3_delete_requests + excluded.s3_delete_requests,
        s3_deleted_objects = s3_deleted_objects + excluded.s3_deleted_objects,
        sqs_requests = sqs_requests + excluded.sqs_requests,
        db_statements = db_statements + excluded.db_statements,
        first_started = min(coalesce(first_started, excluded.first_started), excluded.first_started),
        last_finished = max(coalesce(last_finished, excluded.last_finished), excluded.last_finished);
    INSERT OR IGNORE INTO run_complete_couples (run_id, couple_id)
    SELECT NEW.run_id, NEW.couple_id WHERE NEW.outcome = 'complete' AND NEW.couple_id IS NOT NULL;
END;
