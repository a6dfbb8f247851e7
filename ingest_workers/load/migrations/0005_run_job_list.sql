-- Issue 16: each run's job list in PostgreSQL, written before the jobs go to Redis, so a job that
-- Redis lost (an asynchronous failover, a restart without persistence) can be enqueued again
-- (`ingest runs reconcile RUN_ID`, and while `ingest enqueue --wait` / `ingest run` watch).
-- 'enqueued': planned, not started yet; attempts counts starts, so it begins at 0 there.
ALTER TABLE ingest_jobs DROP CONSTRAINT IF EXISTS ingest_jobs_status_check;
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_status_check
    CHECK (status IN ('enqueued', 'started', 'finished', 'partial', 'failed'));
ALTER TABLE ingest_jobs ADD COLUMN queue text;
ALTER TABLE ingest_jobs ADD COLUMN job_args jsonb;  -- fetch_source's arguments: [spec, run_id(, window)]
