-- Products from e-commerce APIs, unified. (source, product_id) is the natural key.
CREATE TABLE products (
    product_id  text          NOT NULL,
    name        text          NOT NULL,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    currency    text          NOT NULL,
    category    text[],
    in_stock    boolean,
    updated_at  timestamptz,
    source      text          NOT NULL,
    run_id      text          NOT NULL,
    job_id      text          NOT NULL,
    fetched_at  timestamptz   NOT NULL,
    raw         jsonb         NOT NULL,
    loaded_at   timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (source, product_id)
);
CREATE INDEX products_run_id_idx ON products (run_id);

-- Records a stage refused, with the reason and the payload as served.
-- (source, fingerprint) makes a re-run of the same job write each rejection once.
CREATE TABLE rejected_records (
    id          bigserial     PRIMARY KEY,
    source      text          NOT NULL,
    fingerprint text          NOT NULL,
    stage       text          NOT NULL,
    reason      text          NOT NULL,
    payload     jsonb         NOT NULL,
    run_id      text          NOT NULL,
    job_id      text          NOT NULL,
    rejected_at timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (source, fingerprint)
);
CREATE INDEX rejected_records_run_id_idx ON rejected_records (run_id);

-- One row per fetch job: what it did, for summaries and `ingest status`.
CREATE TABLE ingest_jobs (
    job_id      text          PRIMARY KEY,
    run_id      text          NOT NULL,
    source      text          NOT NULL,
    status      text          NOT NULL CHECK (status IN ('started', 'finished', 'failed')),
    attempts    integer       NOT NULL DEFAULT 1,
    fetched     bigint        NOT NULL DEFAULT 0,
    rejected    bigint        NOT NULL DEFAULT 0,
    duplicate   bigint        NOT NULL DEFAULT 0,
    loaded      bigint        NOT NULL DEFAULT 0,
    error       text,
    started_at  timestamptz   NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX ingest_jobs_run_id_idx ON ingest_jobs (run_id);
CREATE INDEX ingest_jobs_source_started_idx ON ingest_jobs (source, started_at);
