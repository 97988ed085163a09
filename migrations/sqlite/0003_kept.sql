-- A photo whose original stays its copy (quality, no saving, already WebP) is recorded switched
-- with webp_key = its original key and the reason here; it is never a failure.
ALTER TABLE photo_progress ADD COLUMN kept_reason TEXT;
