-- A job that will run again is waiting, not failed: 'deferred' (its source's circuit is open; RQ
-- runs it again after the cool-down) and 'retrying' (a transient error; RQ retries it). Both are
-- unfinished: `ingest runs reconcile` enqueues them again if Redis lost them.
-- The job's count columns now hold its outcome (the last attempt's counts, plus those of the attempts
-- it continued from a saved page), no longer the sum over every attempt; attempt_counts keeps each attempt.
ALTER TABLE ingest_jobs DROP CONSTRAINT IF EXISTS ingest_jobs_status_check;
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_status_check
    CHECK (status IN ('enqueued', 'started', 'finished', 'partial', 'failed', 'deferred', 'retrying'));
