-- Counters, so that `status` and `plan` read a few rows instead of scanning photos, thumbnails and
-- progress (issue 11). Same tables as migrations/postgres/0011_counters.sql; the triggers differ:
-- SQLite has row triggers only, and one writer at a time, so every counter lives in shard 0.
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

-- The catalog's triggers: every path that adds, changes or removes rows keeps the totals.
CREATE TRIGGER couples_inserted AFTER INSERT ON couples BEGIN
    UPDATE catalog_counters SET couples = couples + 1 WHERE shard = 0;
END;
CREATE TRIGGER couples_deleted AFTER DELETE ON couples BEGIN
    UPDATE catalog_counters SET couples = couples - 1 WHERE shard = 0;
END;

CREATE TRIGGER photos_inserted AFTER INSERT ON photos BEGIN
    UPDATE catalog_counters SET
        photos = photos + 1,
        photo_bytes = photo_bytes + NEW.bytes,
        sized_photos = sized_photos + (NEW.width IS NOT NULL AND NEW.height IS NOT NULL),
        pixels = pixels + coalesce(NEW.width * NEW.height, 0),
        couples_with_photos = couples_with_photos
            + NOT EXISTS (SELECT 1 FROM photos WHERE couple_id = NEW.couple_id AND id <> NEW.id)
    WHERE shard = 0;
END;
CREATE TRIGGER photos_deleted AFTER DELETE ON photos BEGIN
    UPDATE catalog_counters SET
        photos = photos - 1,
        photo_bytes = photo_bytes - OLD.bytes,
        sized_photos = sized_photos - (OLD.width IS NOT NULL AND OLD.height IS NOT NULL),
        pixels = pixels - coalesce(OLD.width * OLD.height, 0),
        couples_with_photos = couples_with_photos
            - NOT EXISTS (SELECT 1 FROM photos WHERE couple_id = OLD.couple_id)
    WHERE shard = 0;
END;
CREATE TRIGGER photos_updated AFTER UPDATE OF bytes, width, height ON photos BEGIN
    UPDATE catalog_counters SET
        photo_bytes = photo_bytes - OLD.bytes + NEW.bytes,
        sized_photos = sized_photos - (OLD.width IS NOT NULL AND OLD.height IS NOT NULL)
                                    + (NEW.width IS NOT NULL AND NEW.height IS NOT NULL),
        pixels = pixels - coalesce(OLD.width * OLD.height, 0) + coalesce(NEW.width * NEW.height, 0)
    WHERE shard = 0;
END;

CREATE TRIGGER thumbnails_inserted AFTER INSERT ON thumbnails BEGIN
    UPDATE catalog_counters SET thumbnails = thumbnails + 1, thumbnail_bytes = thumbnail_bytes + NEW.bytes
    WHERE shard = 0;
END;
CREATE TRIGGER thumbnails_deleted AFTER DELETE ON thumbnails BEGIN
    UPDATE catalog_counters SET thumbnails = thumbnails - 1, thumbnail_bytes = thumbnail_bytes - OLD.bytes
    WHERE shard = 0;
END;
CREATE TRIGGER thumbnails_updated AFTER UPDATE OF bytes ON thumbnails BEGIN
    UPDATE catalog_counters SET thumbnail_bytes = thumbnail_bytes - OLD.bytes + NEW.bytes
    WHERE shard = 0;
END;

-- The progress ledger's triggers: a recorded photo counts in its state; a move (advance) takes it
-- from one state to the next. A duplicate or late write changes no row, so it counts nothing.
CREATE TRIGGER progress_inserted AFTER INSERT ON photo_progress BEGIN
    INSERT INTO run_state_counters (run_id, shard, state, photos, original_bytes, thumbnails,
                                    thumbnail_bytes, webp_bytes, kept, kept_original_bytes)
    SELECT NEW.run_id, 0, NEW.state, 1, p.bytes,
           (SELECT count(*) FROM thumbnails t WHERE t.photo_id = NEW.photo_id),
           (SELECT coalesce(sum(bytes), 0) FROM thumbnails t WHERE t.photo_id = NEW.photo_id),
           coalesce(NEW.webp_bytes, 0), NEW.kept_reason IS NOT NULL,
           CASE WHEN NEW.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END
    FROM photos p WHERE p.id = NEW.photo_id
    ON CONFLICT (run_id, shard, state) DO UPDATE SET
        photos = photos + excluded.photos,
        original_bytes = original_bytes + excluded.original_bytes,
        thumbnails = thumbnails + excluded.thumbnails,
        thumbnail_bytes = thumbnail_bytes + excluded.thumbnail_bytes,
        webp_bytes = webp_bytes + excluded.webp_bytes,
        kept = kept + excluded.kept,
        kept_original_bytes = kept_original_bytes + excluded.kept_original_bytes;
    INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
    SELECT NEW.run_id, 0, 'failed', NEW.failure_reason, 1 WHERE NEW.state = 'failed'
    ON CONFLICT (run_id, shard, kind, reason) DO UPDATE SET photos = photos + 1;
    INSERT INTO run_reason_counters (run_id, shard, kind, reason, photos)
    SELECT NEW.run_id, 0, 'kept', NEW.kept_reason, 1 WHERE NEW.kept_reason IS NOT NULL
    ON CONFLICT (run_id, shard, kind, reason) DO UPDATE SET photos = photos + 1;
END;

CREATE TRIGGER progress_moved AFTER UPDATE OF state ON photo_progress
WHEN OLD.state <> NEW.state BEGIN
    UPDATE run_state_counters SET
        photos = photos - 1,
        original_bytes = original_bytes - (SELECT bytes FROM photos WHERE id = OLD.photo_id),
        thumbnails = thumbnails - (SELECT count(*) FROM thumbnails t WHERE t.photo_id = OLD.photo_id),
        thumbnail_bytes = thumbnail_bytes
            - (SELECT coalesce(sum(bytes), 0) FROM thumbnails t WHERE t.photo_id = OLD.photo_id),
        webp_bytes = webp_bytes - coalesce(OLD.webp_bytes, 0),
        kept = kept - (OLD.kept_reason IS NOT NULL),
        kept_original_bytes = kept_original_bytes - CASE WHEN OLD.kept_reason IS NOT NULL
            THEN (SELECT bytes FROM photos WHERE id = OLD.photo_id) ELSE 0 END
    WHERE run_id = OLD.run_id AND shard = 0 AND state = OLD.state;
    INSERT INTO run_state_counters (run_id, shard, state, photos, original_bytes, thumbnails,
                                    thumbnail_bytes, webp_bytes, kept, kept_original_bytes)
    SELECT NEW.run_id, 0, NEW.state, 1, p.bytes,
           (SELECT count(*) FROM thumbnails t WHERE t.photo_id = NEW.photo_id),
           (SELECT coalesce(sum(bytes), 0) FROM thumbnails t WHERE t.photo_id = NEW.photo_id),
           coalesce(NEW.webp_bytes, 0), NEW.kept_reason IS NOT NULL,
           CASE WHEN NEW.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END
    FROM photos p WHERE p.id = NEW.photo_id
    ON CONFLICT (run_id, shard, state) DO UPDATE SET
        photos = photos + excluded.photos,
        original_bytes = original_bytes + excluded.original_bytes,
        thumbnails = thumbnails + excluded.thumbnails,
        thumbnail_bytes = thumbnail_bytes + excluded.thumbnail_bytes,
        webp_bytes = webp_bytes + excluded.webp_bytes,
        kept = kept + excluded.kept,
        kept_original_bytes = kept_original_bytes + excluded.kept_original_bytes;
END;

-- Job attempts: summed per run; a couple counts complete with its first complete attempt.
CREATE TRIGGER attempts_inserted AFTER INSERT ON job_attempts BEGIN
    INSERT INTO run_attempt_counters (run_id, shard, attempts, couples_complete, s3_get, s3_put,
                                      s3_delete_requests, s3_deleted_objects, sqs_requests,
                                      db_statements, first_started, last_finished)
    VALUES (NEW.run_id, 0, 1,
            NEW.outcome = 'complete' AND NEW.couple_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM job_attempts j WHERE j.run_id = NEW.run_id
                AND j.couple_id = NEW.couple_id AND j.outcome = 'complete' AND j.id <> NEW.id),
            NEW.s3_get, NEW.s3_put, NEW.s3_delete_requests, NEW.s3_deleted_objects,
            NEW.sqs_requests, NEW.db_statements, NEW.started_at, NEW.finished_at)
    ON CONFLICT (run_id, shard) DO UPDATE SET
        attempts = attempts + 1,
        couples_complete = couples_complete + excluded.couples_complete,
        s3_get = s3_get + excluded.s3_get,
        s3_put = s3_put + excluded.s3_put,
        s3_delete_requests = s3_delete_requests + excluded.s3_delete_requests,
        s3_deleted_objects = s3_deleted_objects + excluded.s3_deleted_objects,
        sqs_requests = sqs_requests + excluded.sqs_requests,
        db_statements = db_statements + excluded.db_statements,
        first_started = min(coalesce(first_started, excluded.first_started), excluded.first_started),
        last_finished = max(coalesce(last_finished, excluded.last_finished), excluded.last_finished);
END;
