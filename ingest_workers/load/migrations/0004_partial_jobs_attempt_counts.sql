-- A job that lost pages ends 'partial' (what it read is loaded, not all of the source).
ALTER TABLE ingest_jobs DROP CONSTRAINT IF EXISTS ingest_jobs_status_check;
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_status_check
    CHECK (status IN ('started', 'finished', 'partial', 'failed'));

-- One entry per ended attempt ({"attempt", "status", "fetched", "rejected", "duplicate", "loaded", "updated"});
-- the job's own count columns hold their sum.
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS attempt_counts jsonb NOT NULL DEFAULT '[]';
