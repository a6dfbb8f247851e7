-- Issue 27. Drift: per job, the top-level fields of its records that no column reads, and how many records had each:
-- {"records": N, "fields": {"discountPercentage": 194}}.
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS drift jsonb;
