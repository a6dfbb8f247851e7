-- Per job, the items of nested datasets: {"issue_labels": {"loaded", "updated", "deleted", "rejected"}}
-- (apart from the job's own counts, which concern the source's records).
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS nested_counts jsonb NOT NULL DEFAULT '{}';
