-- The couples of a run that are enqueued and whose job has not completed, with when they were
-- first enqueued, so that `status` reads the age of the oldest one through an index instead of a
-- scan (issue 10). Rows are added by the producer's checkpoint (every couple up to it is enqueued;
-- `launch --requeue` keeps the first time) and removed by the couple's complete attempt: both by
-- the triggers below, so no caller can forget them. Same table as migrations/postgres.
CREATE TABLE run_open_couples (
    run_id BIGINT NOT NULL,
    couple_id BIGINT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, couple_id)
);
CREATE INDEX run_open_couples_by_age ON run_open_couples (run_id, enqueued_at);

-- Runs launched before this migration: once, from their checkpoints and attempts.
INSERT INTO run_open_couples (run_id, couple_id, enqueued_at)
SELECT pc.run_id, c.id, pc.updated_at
FROM producer_checkpoints pc JOIN couples c ON c.id <= pc.last_couple_id
WHERE NOT EXISTS (SELECT 1 FROM job_attempts a
                  WHERE a.run_id = pc.run_id AND a.couple_id = c.id AND a.outcome = 'complete');

CREATE TRIGGER open_couples_first AFTER INSERT ON producer_checkpoints BEGIN
    INSERT OR IGNORE INTO run_open_couples (run_id, couple_id, enqueued_at)
    SELECT NEW.run_id, c.id, NEW.updated_at FROM couples c
    WHERE c.id <= NEW.last_couple_id
      AND NOT EXISTS (SELECT 1 FROM job_attempts a WHERE a.run_id = NEW.run_id
                      AND a.couple_id = c.id AND a.outcome = 'complete');
END;

CREATE TRIGGER open_couples_more AFTER UPDATE OF last_couple_id ON producer_checkpoints
WHEN NEW.last_couple_id > OLD.last_couple_id BEGIN
    INSERT OR IGNORE INTO run_open_couples (run_id, couple_id, enqueued_at)
    SELECT NEW.run_id, c.id, NEW.updated_at FROM couples c
    WHERE c.id > OLD.last_couple_id AND c.id <= NEW.last_couple_id
      AND NOT EXISTS (SELECT 1 FROM job_attempts a WHERE a.run_id = NEW.run_id
                      AND a.couple_id = c.id AND a.outcome = 'complete');
END;

CREATE TRIGGER open_couples_completed AFTER INSERT ON job_attempts
WHEN NEW.outcome = 'complete' BEGIN
    DELETE FROM run_open_couples WHERE run_id = NEW.run_id AND couple_id = NEW.couple_id;
END;

-- A photo whose thumbnail the store refuses to delete (AccessDenied on that key, e.g. an object
-- lock or a policy on a prefix): no worker claims it again and the run's sweep does not wait for
-- it; `status` counts it and `launch --requeue` clears the mark once the operator fixed the cause.
ALTER TABLE photo_progress ADD COLUMN sweep_blocked TEXT;
CREATE INDEX photo_progress_sweep_blocked ON photo_progress (run_id) WHERE sweep_blocked IS NOT NULL;
