-- Issue 12: merge datasets replace changed records; each job counts the rows it replaced.
-- fetched = rejected + duplicate + loaded + updated. Existing rows keep every value (updated = 0).
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS updated bigint NOT NULL DEFAULT 0;
