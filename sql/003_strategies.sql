-- Strategy side: configurations, immutable signal snapshots, their signals.

CREATE TABLE strategies (
    strategy_id   text PRIMARY KEY CHECK (strategy_id ~ '^[a-z0-9][a-z0-9_\-]{0,62}$'),
    kind          text NOT NULL,
    params        jsonb NOT NULL,
    params_hash   text NOT NULL,
    universe      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (strategy_id, params_hash)
);

-- snapshot_id is the content hash of (strategy, params hash, window, input watermarks,
-- code version, weights): identical inputs give the identical id; rows are never rewritten.
CREATE TABLE signal_snapshots (
    snapshot_id       text PRIMARY KEY CHECK (snapshot_id ~ '^[0-9a-f]{64}$'),
    strategy_id       text NOT NULL REFERENCES strategies (strategy_id),
    params_hash       text NOT NULL,
    window_start      date NOT NULL,
    window_end        date NOT NULL,
    input_watermarks  jsonb NOT NULL,
    code_version      text NOT NULL,
    row_count         bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (window_end >= window_start)
);
CREATE INDEX signal_snapshots_strategy ON signal_snapshots (strategy_id, window_start, window_end);

CREATE TABLE signals (
    snapshot_id    text NOT NULL REFERENCES signal_snapshots (snapshot_id),
    decision_date  date NOT NULL,
    instrument_id  text NOT NULL REFERENCES instruments (instrument_id),
    weight         double precision NOT NULL CHECK (weight > '-Infinity'::float8 AND weight < 'Infinity'::float8),
    PRIMARY KEY (snapshot_id, decision_date, instrument_id)
);
