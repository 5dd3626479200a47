-- Bitemporal facts. Rows are never updated or deleted: a revision (later known_at) and a
-- correction (same known_at, later recorded_at) are both new rows.
-- Point-in-time read: per key, the row with the greatest known_at <= a, ties broken by the
-- greatest recorded_at, among rows with recorded_at <= system_as_of. The *_pit indexes serve
-- exactly that ordering; the *_recorded BRIN indexes serve the revision sensor's cursor (rows
-- arrive in recorded_at order, so a BRIN index is tiny and nearly free to maintain).
--
-- No row-level foreign keys on these tables: a bulk load of millions of rows would pay one
-- referential-integrity lookup per row and per key. Ingestion validates every instrument id
-- (rule `unknown-instrument`) and writes the batch row in the same transaction instead.

CREATE TABLE prices (
    instrument_id  text NOT NULL,
    obs_date       date NOT NULL,
    open           double precision,
    high           double precision,
    low            double precision,
    close          double precision NOT NULL,
    volume         double precision,
    known_at       timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    batch_id       bigint NOT NULL,
    CHECK (close > 0 AND close < 'Infinity'::float8),
    CHECK (open IS NULL OR (open > 0 AND open < 'Infinity'::float8)),
    CHECK (high IS NULL OR (high > 0 AND high < 'Infinity'::float8)),
    CHECK (low IS NULL OR (low > 0 AND low < 'Infinity'::float8)),
    CHECK (high IS NULL OR low IS NULL OR high >= low),
    CHECK (volume IS NULL OR volume >= 0),
    -- a value cannot be known before the day it is about starts (UTC)
    CHECK (known_at >= obs_date::timestamp AT TIME ZONE 'UTC')
);
CREATE UNIQUE INDEX prices_pit ON prices (instrument_id, obs_date, known_at DESC, recorded_at DESC);
CREATE INDEX prices_recorded ON prices USING brin (recorded_at);

CREATE TABLE macro_observations (
    series_id      text NOT NULL,
    obs_date       date NOT NULL,
    value          double precision NOT NULL CHECK (value > '-Infinity'::float8 AND value < 'Infinity'::float8),
    known_at       timestamptz NOT NULL CHECK (known_at >= obs_date::timestamp AT TIME ZONE 'UTC'),
    recorded_at    timestamptz NOT NULL,
    batch_id       bigint NOT NULL
);
CREATE UNIQUE INDEX macro_observations_pit ON macro_observations (series_id, obs_date, known_at DESC, recorded_at DESC);
CREATE INDEX macro_observations_recorded ON macro_observations USING brin (recorded_at);

CREATE TABLE funding_rates (
    instrument_id   text NOT NULL,
    ts              timestamptz NOT NULL,
    rate            double precision NOT NULL CHECK (rate > '-Infinity'::float8 AND rate < 'Infinity'::float8),
    interval_hours  double precision NOT NULL CHECK (interval_hours > 0),
    known_at        timestamptz NOT NULL CHECK (known_at >= ts),
    recorded_at     timestamptz NOT NULL,
    batch_id        bigint NOT NULL
);
CREATE UNIQUE INDEX funding_rates_pit ON funding_rates (instrument_id, ts, known_at DESC, recorded_at DESC);
CREATE INDEX funding_rates_recorded ON funding_rates USING brin (recorded_at);

-- Corporate actions are keyed by ex_date (their obs_date). They are usually announced before
-- the ex-date, so known_at < ex_date is allowed here (and only here).
CREATE TABLE corporate_actions (
    instrument_id  text NOT NULL,
    ex_date        date NOT NULL,
    action         text NOT NULL CHECK (action IN ('split', 'dividend')),
    value          double precision NOT NULL CHECK (value > 0 AND value < 'Infinity'::float8),
    known_at       timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    batch_id       bigint NOT NULL
);
CREATE UNIQUE INDEX corporate_actions_pit ON corporate_actions (instrument_id, ex_date, action, known_at DESC, recorded_at DESC);
CREATE INDEX corporate_actions_recorded ON corporate_actions USING brin (recorded_at);

CREATE TABLE external_signals (
    signal_name    text NOT NULL CHECK (signal_name ~ '^[A-Za-z0-9_.\-]{1,64}$'),
    instrument_id  text NOT NULL,
    obs_date       date NOT NULL,
    value          double precision NOT NULL CHECK (value > '-Infinity'::float8 AND value < 'Infinity'::float8),
    known_at       timestamptz NOT NULL CHECK (known_at >= obs_date::timestamp AT TIME ZONE 'UTC'),
    recorded_at    timestamptz NOT NULL,
    batch_id       bigint NOT NULL
);
CREATE UNIQUE INDEX external_signals_pit ON external_signals (signal_name, instrument_id, obs_date, known_at DESC, recorded_at DESC);
CREATE INDEX external_signals_recorded ON external_signals USING brin (recorded_at);

-- Append-only, enforced: facts are never updated, deleted or truncated.
CREATE FUNCTION reject_fact_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %: bitemporal facts are append-only; store a revision or correction instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER prices_append_only BEFORE UPDATE OR DELETE ON prices
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER prices_no_truncate BEFORE TRUNCATE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER macro_observations_append_only BEFORE UPDATE OR DELETE ON macro_observations
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER macro_observations_no_truncate BEFORE TRUNCATE ON macro_observations
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER funding_rates_append_only BEFORE UPDATE OR DELETE ON funding_rates
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER funding_rates_no_truncate BEFORE TRUNCATE ON funding_rates
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER corporate_actions_append_only BEFORE UPDATE OR DELETE ON corporate_actions
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER corporate_actions_no_truncate BEFORE TRUNCATE ON corporate_actions
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER external_signals_append_only BEFORE UPDATE OR DELETE ON external_signals
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER external_signals_no_truncate BEFORE TRUNCATE ON external_signals
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER universe_membership_append_only BEFORE UPDATE OR DELETE ON universe_membership
    FOR EACH ROW EXECUTE FUNCTION reject_fact_mutation();
CREATE TRIGGER universe_membership_no_truncate BEFORE TRUNCATE ON universe_membership
    FOR EACH STATEMENT EXECUTE FUNCTION reject_fact_mutation();
