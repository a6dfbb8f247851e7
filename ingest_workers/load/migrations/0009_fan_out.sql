-- Issue 24: fan-out. A parent job writes the child work of each batch's parent records here, in the
-- batch's own transaction (an outbox), with the child jobs planned in ingest_jobs in that same
-- transaction; the jobs go to Redis after the commit, and again from ingest_jobs if that was lost.
-- A child job reads its parents from here (nothing of them travels through Redis) and marks each
-- one done in the transaction of that parent's last child rows, so a killed child job resumes at
-- its first pending parent.
CREATE TABLE IF NOT EXISTS fanout_parents (
    run_id       text        NOT NULL,
    child_source text        NOT NULL,
    parent_key   text        NOT NULL,  -- the parent's natural key, or a partition as canonical JSON
    job_id       text        NOT NULL,  -- the child job that takes this parent
    position     integer     NOT NULL,  -- its place in that job
    parent       jsonb       NOT NULL,  -- the parent record as served (or the partition's values)
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'skipped', 'failed')),
    error        text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, child_source, parent_key)
);
CREATE INDEX IF NOT EXISTS fanout_parents_job_idx ON fanout_parents (job_id, position);

-- The job that fanned a child job out (NULL for the jobs the producer enqueued), and a child job's
-- parents processed and requests skipped (on_status "skip"): not part of fetched = rejected + ...
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS parent_job text;
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS parents bigint NOT NULL DEFAULT 0;
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS skipped bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS ingest_jobs_parent_job_idx ON ingest_jobs (parent_job) WHERE parent_job IS NOT NULL;

-- A child source's cursor per parent (or per partition): committed with that parent's rows.
CREATE TABLE IF NOT EXISTS parent_cursors (
    source     text        NOT NULL,
    parent_key text        NOT NULL,
    field      text        NOT NULL,
    position   jsonb       NOT NULL,
    run_id     text        NOT NULL,
    job_id     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, parent_key)
);
