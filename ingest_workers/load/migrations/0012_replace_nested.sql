-- Issue 27: a replace dataset's nested datasets are switched with it; the rows each lost: {"dataset": N}.
ALTER TABLE replace_switches ADD COLUMN IF NOT EXISTS nested jsonb NOT NULL DEFAULT '{}';
