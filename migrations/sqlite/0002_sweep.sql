-- Deletions are done by sweeps that claim switched photos in batches of up to 1,000 keys: a claim
-- names its owner and lasts until sweep_until (Unix ms), after which another worker may take it.
ALTER TABLE photo_progress ADD COLUMN sweep_owner TEXT;
ALTER TABLE photo_progress ADD COLUMN sweep_until INTEGER;
CREATE INDEX photo_progress_to_sweep ON photo_progress (run_id, state, photo_id);
