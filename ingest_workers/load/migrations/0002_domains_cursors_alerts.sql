-- Issue 3: the other four domains, per-source cursors, and threshold alerts.
-- Every domain table: a natural unique key (source first), lineage columns and the raw payload.

CREATE INDEX products_updated_at_idx ON products (updated_at);

-- Stock quotes: one row per ticker and moment.
CREATE TABLE stock_quotes (
    ticker      text          NOT NULL,
    ts          timestamptz   NOT NULL,
    price       numeric(18,6) NOT NULL CHECK (price > 0),
    volume      bigint        NOT NULL CHECK (volume >= 0),
    currency    text          NOT NULL,
    exchange    text,
    source      text          NOT NULL,
    run_id      text          NOT NULL,
    job_id      text          NOT NULL,
    fetched_at  timestamptz   NOT NULL,
    raw         jsonb         NOT NULL,
    loaded_at   timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (source, ticker, ts)
);
CREATE INDEX stock_quotes_ticker_ts_idx ON stock_quotes (ticker, ts);
CREATE INDEX stock_quotes_run_id_idx ON stock_quotes (run_id);

-- Social mentions (Twitter-like and Telegram-like feeds), with sentiment and a pump-signal flag.
CREATE TABLE social_mentions (
    platform        text        NOT NULL,
    mention_id      text        NOT NULL,
    ticker          text        NOT NULL,
    ts              timestamptz NOT NULL,
    author          text,
    text            text        NOT NULL,
    sentiment       text        CHECK (sentiment IN ('positive', 'negative', 'neutral')),
    sentiment_score integer,
    pump_signal     boolean,
    source          text        NOT NULL,
    run_id          text        NOT NULL,
    job_id          text        NOT NULL,
    fetched_at      timestamptz NOT NULL,
    raw             jsonb       NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, mention_id)
);
CREATE INDEX social_mentions_ticker_ts_platform_idx ON social_mentions (ticker, ts, platform);
CREATE INDEX social_mentions_pump_idx ON social_mentions (ts) WHERE pump_signal;
CREATE INDEX social_mentions_run_id_idx ON social_mentions (run_id);

-- Posts shaped like jsonplaceholder's /posts.
CREATE TABLE posts (
    post_id     bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    title       text        NOT NULL,
    body        text,
    source      text        NOT NULL,
    run_id      text        NOT NULL,
    job_id      text        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    raw         jsonb       NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, post_id)
);
CREATE INDEX posts_user_id_idx ON posts (user_id);
CREATE INDEX posts_run_id_idx ON posts (run_id);

-- Sensor readings, after threshold filter -> normalise -> moving average.
CREATE TABLE sensor_readings (
    sensor_id   text             NOT NULL,
    kind        text             NOT NULL,
    ts          timestamptz      NOT NULL,
    value       double precision NOT NULL,
    unit        text,
    normalised  double precision,
    moving_avg  double precision,
    source      text             NOT NULL,
    run_id      text             NOT NULL,
    job_id      text             NOT NULL,
    fetched_at  timestamptz      NOT NULL,
    raw         jsonb            NOT NULL,
    loaded_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (source, sensor_id, ts)
);
CREATE INDEX sensor_readings_sensor_ts_idx ON sensor_readings (sensor_id, ts);
CREATE INDEX sensor_readings_run_id_idx ON sensor_readings (run_id);

-- Records that crossed a threshold of the alert sink; written in the batch's transaction.
CREATE TABLE alerts (
    id          bigserial        PRIMARY KEY,
    source      text             NOT NULL,
    record_key  text             NOT NULL,
    rule        text             NOT NULL,
    field       text             NOT NULL,
    value       double precision NOT NULL,
    threshold   double precision NOT NULL,
    row_data    jsonb            NOT NULL,
    run_id      text             NOT NULL,
    job_id      text             NOT NULL,
    created_at  timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (source, record_key, rule)
);
CREATE INDEX alerts_created_at_idx ON alerts (created_at);

-- Per-source high-water mark of incremental runs, advanced in the transaction of the batch that carries it.
CREATE TABLE source_cursors (
    source      text        PRIMARY KEY,
    field       text        NOT NULL,
    position    jsonb       NOT NULL,
    run_id      text        NOT NULL,
    job_id      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
