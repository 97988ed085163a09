-- Counters, so that `status` and `plan` read a few rows instead of scanning photos, thumbnails and
-- progress (issue 11). Same tables as migrations/sqlite/0011_counters.sql; the triggers differ:
-- here they are statement triggers over transition tables (one counter update per statement, not
-- per row, so a bulk INSERT ... SELECT or COPY pays once), and the counters are sharded so that
-- concurrent writers (140 workers, parallel imports) seldom wait for the same counter row: a
-- run's counters by couple id modulo 64, the catalog's by the writing session modulo 16. Reads
-- sum the shards.
-- `recast status --recount` scans everything and rewrites these rows if they ever drift.

-- What the catalog holds, whatever any run did.
CREATE TABLE catalog_counters (
    shard BIGINT PRIMARY KEY,
    couples BIGINT NOT NULL DEFAULT 0,
    couples_with_photos BIGINT NOT NULL DEFAULT 0,
    photos BIGINT NOT NULL DEFAULT 0,
    photo_bytes BIGINT NOT NULL DEFAULT 0,
    thumbnails BIGINT NOT NULL DEFAULT 0,
    thumbnail_bytes BIGINT NOT NULL DEFAULT 0,
    sized_photos BIGINT NOT NULL DEFAULT 0,
    pixels BIGINT NOT NULL DEFAULT 0
);

-- A run's recorded photos by state (pending = the catalog's totals minus these).
CREATE TABLE run_state_counters (
    run_id BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    state TEXT NOT NULL,
    photos BIGINT NOT NULL,
    original_bytes BIGINT NOT NULL,
    thumbnails BIGINT NOT NULL,
    thumbnail_bytes BIGINT NOT NULL,
    webp_bytes BIGINT NOT NULL,
    kept BIGINT NOT NULL,
    kept_original_bytes BIGINT NOT NULL,
    PRIMARY KEY (run_id, shard, state)
);

-- A run's failed photos by failure reason (kind 'failed') and kept originals by reason ('kept').
CREATE TABLE run_reason_counters (
    run_id BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    photos BIGINT NOT NULL,
    PRIMARY KEY (run_id, shard, kind, reason)
);

-- A run's job attempts summed, and its couples with a complete attempt.
CREATE TABLE run_attempt_counters (
    run_id BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    couples_complete BIGINT NOT NULL,
    s3_get BIGINT NOT NULL,
    s3_put BIGINT NOT NULL,
    s3_delete_requests BIGINT NOT NULL,
    s3_deleted_objects BIGINT NOT NULL,
    sqs_requests BIGINT NOT NULL,
    db_statements BIGINT NOT NULL,
    first_started BIGINT,
    last_finished BIGINT,
    PRIMARY KEY (run_id, shard)
);

-- Existing catalogs start from a full count, once.
INSERT INTO catalog_counters (shard, couples, couples_with_photos, photos, photo_bytes, thumbnails,
                              thumbnail_bytes, sized_photos, pixels)
SELECT 0, (SELECT count(*) FROM couples), (SELECT count(DISTINCT couple_id) FROM photos),
       (SELECT count(*) FROM photos), (SELECT coalesce(sum(bytes), 0) FROM photos),
       (SELECT count(*) FROM thumbnails), (SELECT coalesce(sum(bytes), 0) FROM thumbnails),
       (SELECT count(*) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL),
       (SELECT coalesce(sum(width * height), 0) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL);

INSERT INTO run_state_counters (run_id, shard, state, photos, original_bytes, thumbnails,
                                thumbnail_bytes, webp_bytes, kept, kept_original_bytes)
SELECT pp.run_id, 0, pp.state, count(*), coalesce(sum(p.bytes), 0),
       coalesce(sum(t.n), 0), coalesce(sum(t.b), 0),
       coalesce(sum(pp.webp_bytes), 0), count(pp.kept_reason),
       coalesce(sum(CASE WHEN pp.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END), 0)
FROM photo_progress pp JOIN photos p ON p.id = pp.photo_id
LEFT JOIN (SELECT photo_id, count(*) AS n, sum(bytes) AS b FROM thumbnails GROUP BY photo_id) t
       ON t.photo_id = pp.photo_id
GROUP BY pp.run_id, pp.state;

INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
SELECT run_id, 0, 'failed', failure_reason, count(*) FROM photo_progress
WHERE state = 'failed' GROUP BY run_id, failure_reason;
INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
SELECT run_id, 0, 'kept', kept_reason, count(*) FROM photo_progress
WHERE kept_reason IS NOT NULL GROUP BY run_id, kept_reason;

INSERT INTO run_attempt_counters (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                  s3_delete_requests, s3_deleted_objects, sqs_requests,
                                  db_statements, first_started, last_finished)
SELECT run_id, 0, count(*), count(DISTINCT CASE WHEN outcome = 'complete' THEN couple_id END),
       sum(s3_get), sum(s3_put), sum(s3_delete_requests), sum(s3_deleted_objects),
       sum(sqs_requests), sum(db_statements), min(started_at), max(finished_at)
FROM job_attempts GROUP BY run_id;

-- The catalog's triggers: every path that adds, changes or removes rows (add_couples, COPY into
-- staging then INSERT ... SELECT, deletes) keeps the totals, once per statement.
CREATE FUNCTION catalog_counters_add(d catalog_counters) RETURNS void LANGUAGE sql AS $$
    INSERT INTO catalog_counters AS c
    VALUES (pg_backend_pid() % 16, d.couples, d.couples_with_photos, d.photos, d.photo_bytes,
            d.thumbnails, d.thumbnail_bytes, d.sized_photos, d.pixels)
    ON CONFLICT (shard) DO UPDATE SET
        couples = c.couples + excluded.couples,
        couples_with_photos = c.couples_with_photos + excluded.couples_with_photos,
        photos = c.photos + excluded.photos,
        photo_bytes = c.photo_bytes + excluded.photo_bytes,
        thumbnails = c.thumbnails + excluded.thumbnails,
        thumbnail_bytes = c.thumbnail_bytes + excluded.thumbnail_bytes,
        sized_photos = c.sized_photos + excluded.sized_photos,
        pixels = c.pixels + excluded.pixels;
$$;

CREATE FUNCTION couples_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
    ELSE
        SELECT -count(*) INTO n FROM old_rows;
    END IF;
    IF n <> 0 THEN
        PERFORM catalog_counters_add(ROW(0, n, 0, 0, 0, 0, 0, 0, 0)::catalog_counters);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER couples_inserted AFTER INSERT ON couples REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION couples_counted();
CREATE TRIGGER couples_deleted AFTER DELETE ON couples REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION couples_counted();

-- A couple gains (loses) its first (last) photo when, after the statement, the photos table holds
-- exactly the photos the statement added (none): one index count per couple touched.
CREATE FUNCTION photos_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d catalog_counters;
BEGIN
    SELECT 0, 0,
           (SELECT count(*) FROM (SELECT couple_id, count(*) AS n FROM new_rows GROUP BY couple_id) g
             WHERE (SELECT count(*) FROM photos p WHERE p.couple_id = g.couple_id) = g.n),
           count(*), coalesce(sum(bytes), 0),
           0, 0,
           count(*) FILTER (WHERE width IS NOT NULL AND height IS NOT NULL),
           coalesce(sum(width * height), 0)
      INTO d FROM new_rows;
    IF d.photos > 0 THEN
        PERFORM catalog_counters_add(d);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER photos_inserted AFTER INSERT ON photos REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION photos_inserted();

CREATE FUNCTION photos_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d catalog_counters;
BEGIN
    SELECT 0, 0,
           -(SELECT count(DISTINCT couple_id) FROM old_rows o
              WHERE NOT EXISTS (SELECT 1 FROM photos p WHERE p.couple_id = o.couple_id)),
           -count(*), -coalesce(sum(bytes), 0),
           0, 0,
           -count(*) FILTER (WHERE width IS NOT NULL AND height IS NOT NULL),
           -coalesce(sum(width * height), 0)
      INTO d FROM old_rows;
    IF d.photos <> 0 THEN
        PERFORM catalog_counters_add(d);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER photos_deleted AFTER DELETE ON photos REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION photos_deleted();

CREATE FUNCTION photos_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d catalog_counters;
BEGIN
    SELECT 0, 0, 0, 0,
           coalesce(sum(n.bytes), 0) - coalesce(sum(o.bytes), 0),
           0, 0,
           count(*) FILTER (WHERE n.width IS NOT NULL AND n.height IS NOT NULL)
             - count(*) FILTER (WHERE o.width IS NOT NULL AND o.height IS NOT NULL),
           coalesce(sum(n.width * n.height), 0) - coalesce(sum(o.width * o.height), 0)
      INTO d FROM old_rows o JOIN new_rows n ON n.id = o.id;
    PERFORM catalog_counters_add(d);
    RETURN NULL;
END $$;
CREATE TRIGGER photos_updated AFTER UPDATE ON photos
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION photos_updated();

CREATE FUNCTION thumbnails_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n BIGINT := 0; b BIGINT := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT n + count(*), b + coalesce(sum(bytes), 0) INTO n, b FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT n - count(*), b - coalesce(sum(bytes), 0) INTO n, b FROM old_rows;
    END IF;
    IF n <> 0 OR b <> 0 THEN
        PERFORM catalog_counters_add(ROW(0, 0, 0, 0, 0, n, b, 0, 0)::catalog_counters);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER thumbnails_inserted AFTER INSERT ON thumbnails REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION thumbnails_counted();
CREATE TRIGGER thumbnails_deleted AFTER DELETE ON thumbnails REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION thumbnails_counted();
CREATE TRIGGER thumbnails_updated AFTER UPDATE ON thumbnails
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION thumbnails_counted();

-- The progress ledger: a recorded photo counts in its state, a move (advance) takes it from one
-- state to the next. A duplicate or late write inserts or moves no row, so it counts nothing.
-- Rows are upserted in key order so that two statements lock shared counter rows in one order.
-- `progress_delta` is the statement's change: (sign, run_id, photo_id, couple_id, state,
-- webp_bytes, kept_reason) rows, made by each trigger from its transition tables.
CREATE FUNCTION progress_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_state_counters AS c
    SELECT r.run_id, r.couple_id % 64, r.state, count(*), coalesce(sum(p.bytes), 0),
           coalesce(sum(t.n), 0), coalesce(sum(t.b), 0), coalesce(sum(r.webp_bytes), 0),
           count(r.kept_reason), coalesce(sum(p.bytes) FILTER (WHERE r.kept_reason IS NOT NULL), 0)
    FROM new_rows r JOIN photos p ON p.id = r.photo_id
    LEFT JOIN LATERAL (SELECT count(*) AS n, sum(bytes) AS b FROM thumbnails
                       WHERE photo_id = r.photo_id) t ON true
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (run_id, shard, state) DO UPDATE SET
        photos = c.photos + excluded.photos,
        original_bytes = c.original_bytes + excluded.original_bytes,
        thumbnails = c.thumbnails + excluded.thumbnails,
        thumbnail_bytes = c.thumbnail_bytes + excluded.thumbnail_bytes,
        webp_bytes = c.webp_bytes + excluded.webp_bytes,
        kept = c.kept + excluded.kept,
        kept_original_bytes = c.kept_original_bytes + excluded.kept_original_bytes;
    INSERT INTO run_reason_counters AS c
    SELECT run_id, couple_id % 64, kind, reason, count(*) FROM (
        SELECT run_id, couple_id, 'failed' AS kind, failure_reason AS reason
          FROM new_rows WHERE state = 'failed'
        UNION ALL
        SELECT run_id, couple_id, 'kept', kept_reason FROM new_rows WHERE kept_reason IS NOT NULL
    ) r
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (run_id, shard, kind, reason) DO UPDATE SET photos = c.photos + excluded.photos;
    RETURN NULL;
END $$;
CREATE TRIGGER progress_inserted AFTER INSERT ON photo_progress REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_inserted();

-- A move leaves its old state (sign -1) and enters its new one (+1), with the photo's bytes.
-- (PostgreSQL takes no column list on a trigger with transition tables, so every update of the
-- ledger runs this; those that move no state, such as sweep claims, add nothing.)
CREATE FUNCTION progress_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_state_counters AS c
    SELECT r.run_id, r.couple_id % 64, r.state, sum(r.sign), coalesce(sum(r.sign * p.bytes), 0),
           coalesce(sum(r.sign * t.n), 0), coalesce(sum(r.sign * t.b), 0),
           coalesce(sum(r.sign * r.webp_bytes), 0),
           coalesce(sum(r.sign) FILTER (WHERE r.kept_reason IS NOT NULL), 0),
           coalesce(sum(r.sign * p.bytes) FILTER (WHERE r.kept_reason IS NOT NULL), 0)
    FROM (
        SELECT s.sign, CASE WHEN s.sign < 0 THEN o.state ELSE n.state END AS state,
               o.run_id, o.photo_id, o.couple_id, o.webp_bytes, o.kept_reason
        FROM old_rows o JOIN new_rows n ON n.run_id = o.run_id AND n.photo_id = o.photo_id
        CROSS JOIN (VALUES (-1), (1)) AS s(sign)
        WHERE n.state <> o.state
    ) r
    JOIN photos p ON p.id = r.photo_id
    LEFT JOIN LATERAL (SELECT count(*) AS n, sum(bytes) AS b FROM thumbnails
                       WHERE photo_id = r.photo_id) t ON true
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (run_id, shard, state) DO UPDATE SET
        photos = c.photos + excluded.photos,
        original_bytes = c.original_bytes + excluded.original_bytes,
        thumbnails = c.thumbnails + excluded.thumbnails,
        thumbnail_bytes = c.thumbnail_bytes + excluded.thumbnail_bytes,
        webp_bytes = c.webp_bytes + excluded.webp_bytes,
        kept = c.kept + excluded.kept,
        kept_original_bytes = c.kept_original_bytes + excluded.kept_original_bytes;
    RETURN NULL;
END $$;
CREATE TRIGGER progress_moved AFTER UPDATE ON photo_progress
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_moved();

-- Job attempts: summed per run and shard; a couple counts complete with its first complete
-- attempt: after the statement, its complete attempts are exactly those the statement added.
CREATE FUNCTION attempts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
        SELECT g.run_id, g.couple_id % 64, 0, 1, 0, 0, 0, 0, 0, 0, NULL, NULL
        FROM (SELECT run_id, couple_id, count(*) AS n FROM new_rows
              WHERE outcome = 'complete' AND couple_id IS NOT NULL GROUP BY 1, 2) g
        WHERE (SELECT count(*) FROM job_attempts j WHERE j.run_id = g.run_id
                 AND j.couple_id = g.couple_id AND j.outcome = 'complete') = g.n
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
CREATE TRIGGER attempts_inserted AFTER INSERT ON job_attempts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempts_inserted();
