-- Issue 27: table lifecycles. A job counts the stored rows its records deleted (a merge or history
-- dataset's deleted_column; a replace dataset's rows gone since the previous complete run):
-- fetched = rejected + duplicate + loaded + updated + deleted. Existing rows keep every value (deleted = 0).
ALTER TABLE ingest_jobs ADD COLUMN IF NOT EXISTS deleted bigint NOT NULL DEFAULT 0;
-- A replace dataset's switch, once per source and run: the row is written in the switch's transaction,
-- so a switch that committed is never made again (a retried or a second last job finds it).
CREATE TABLE IF NOT EXISTS replace_switches (
    source text NOT NULL,
    run_id text NOT NULL,
    outcome text NOT NULL,  -- 'replaced' or 'refused' (a job of the source in the run did not finish)
    detail text NOT NULL,
    deleted bigint NOT NULL DEFAULT 0,  -- 'replaced': the source's rows the run no longer served
    switched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, run_id)
);
