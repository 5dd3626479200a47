-- Results. A rerun never overwrites: it inserts a new run and marks the previous current run
-- of the same (strategy, window) superseded, in one transaction, so readers always see exactly
-- one complete current result per window.

CREATE TABLE backtest_runs (
    run_id               text PRIMARY KEY CHECK (run_id ~ '^[0-9a-f]{32}$'),
    strategy_id          text NOT NULL REFERENCES strategies (strategy_id),
    window_start         date NOT NULL,
    window_end           date NOT NULL,
    config               jsonb NOT NULL,
    config_hash          text NOT NULL,
    signal_snapshot_id   text NOT NULL REFERENCES signal_snapshots (snapshot_id),
    system_as_of         timestamptz NOT NULL,
    engine_version       text NOT NULL,
    orchestrator_run_id  text,
    status               text NOT NULL CHECK (status IN ('success', 'failed')),
    -- deferred: the previous run points at its successor before the successor row is inserted,
    -- inside the same transaction (the one-current index forbids two current rows at any time)
    superseded_by        text REFERENCES backtest_runs (run_id) DEFERRABLE INITIALLY DEFERRED,
    start_state          jsonb,
    end_state            jsonb,
    monthly_returns      jsonb,
    summary              jsonb,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (window_end >= window_start)
);
-- one current result per (strategy, window, settings): config_hash covers the whole config
-- (costs, clean mode, lag, ...) and the start state, so an ad-hoc run with other settings never
-- replaces the pipeline's run of the same window
CREATE UNIQUE INDEX backtest_runs_one_current
    ON backtest_runs (strategy_id, window_start, window_end, config_hash)
    WHERE superseded_by IS NULL AND status = 'success';
CREATE INDEX backtest_runs_strategy ON backtest_runs (strategy_id, window_start);

CREATE TABLE daily_equity (
    run_id          text NOT NULL REFERENCES backtest_runs (run_id),
    session_date    date NOT NULL,
    equity          double precision NOT NULL,
    cash            double precision NOT NULL,
    gross_exposure  double precision NOT NULL,
    net_exposure    double precision NOT NULL,
    drawdown        double precision NOT NULL,
    turnover        double precision NOT NULL,
    PRIMARY KEY (run_id, session_date)
);

CREATE TABLE fills (
    run_id         text NOT NULL REFERENCES backtest_runs (run_id),
    fill_no        integer NOT NULL,
    session_date   date NOT NULL,
    instrument_id  text NOT NULL,
    side           text NOT NULL CHECK (side IN ('buy', 'sell', 'none')),
    quantity       double precision NOT NULL,
    price          double precision,
    notional       double precision NOT NULL,
    cost           double precision NOT NULL,
    reason         text NOT NULL,
    PRIMARY KEY (run_id, fill_no)
);

CREATE TABLE round_trips (
    run_id         text NOT NULL REFERENCES backtest_runs (run_id),
    trip_no        integer NOT NULL,
    instrument_id  text NOT NULL,
    entry_date     date NOT NULL,
    exit_date      date NOT NULL,
    holding_days   integer NOT NULL,
    pnl            double precision NOT NULL,
    return_pct     double precision,
    PRIMARY KEY (run_id, trip_no)
);

CREATE TABLE metrics (
    run_id       text NOT NULL REFERENCES backtest_runs (run_id),
    metric_name  text NOT NULL,
    value        double precision,
    PRIMARY KEY (run_id, metric_name)
);
