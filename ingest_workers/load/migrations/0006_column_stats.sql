-- Per-job statistics of the numeric columns of datasets with stats: {"price": {"count", "min", "max", "mean"}}.
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS column_stats jsonb;
