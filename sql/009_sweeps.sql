-- Parameter sweeps (macro_pipeline/research/sweep.py). A sweep is immutable: its id is the sha256
-- of kind, grid, fixed parameters, universe/rebalance/calendar, window, settings (engine config,
-- metric, CSCV blocks, walk-forward), the input watermarks it read and the code versions, so the
-- same inputs give the same id and a rerun finds (and checks) the stored result instead of
-- writing a second one. Everything of a sweep is written in one transaction.

CREATE TABLE sweeps (
    sweep_id          text PRIMARY KEY CHECK (sweep_id ~ '^[0-9a-f]{64}$'),
    name              text,                       -- the sweeps.toml entry, if any
    kind              text NOT NULL,
    spec              jsonb NOT NULL,             -- what was asked: grid, fixed params, window, settings
    input_watermarks  jsonb NOT NULL,             -- greatest recorded_at of each input read
    system_as_of      timestamptz NOT NULL,       -- rerun with it to reproduce bit for bit
    code_version      text NOT NULL,
    engine_version    text NOT NULL,
    n_configs         integer NOT NULL CHECK (n_configs >= 1),
    sessions          date[] NOT NULL,            -- the rows of every configuration's returns
    metric            text NOT NULL,              -- the metric that picks the best configuration
    best_config       integer NOT NULL,
    stats             jsonb NOT NULL,             -- DSR, PBO, minimum backtest length, ...
    orchestrator_run_id text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX sweeps_name ON sweeps (name, created_at);

-- one row per configuration: its parameters and its metrics
CREATE TABLE sweep_configs (
    sweep_id          text NOT NULL REFERENCES sweeps (sweep_id) ON DELETE CASCADE,
    config_idx        integer NOT NULL,
    params            jsonb NOT NULL,             -- every parameter, defaults filled
    params_hash       text NOT NULL,
    label             text NOT NULL,              -- the grid parameters, name=value,...
    sharpe            double precision,
    cagr              double precision,
    annual_volatility double precision,
    sortino           double precision,
    max_drawdown      double precision,
    calmar            double precision,
    total_return      double precision,
    PRIMARY KEY (sweep_id, config_idx)
);

-- each configuration's daily returns, compact and columnar: float64 little-endian, one per row
-- of sweeps.sessions (8,313 sessions = 66 kB; exact bits, so a reproduction compares bytes)
CREATE TABLE sweep_returns (
    sweep_id          text NOT NULL REFERENCES sweeps (sweep_id) ON DELETE CASCADE,
    config_idx        integer NOT NULL,
    returns           bytea NOT NULL,
    PRIMARY KEY (sweep_id, config_idx)
);

-- walk-forward: the configuration chosen in each fold, and every configuration's in-sample and
-- out-of-sample metric in that fold (the report's scatter)
CREATE TABLE sweep_folds (
    sweep_id          text NOT NULL REFERENCES sweeps (sweep_id) ON DELETE CASCADE,
    fold              integer NOT NULL,
    train_start       date NOT NULL,
    train_end         date NOT NULL,
    test_start        date NOT NULL,
    test_end          date NOT NULL,
    chosen_config     integer NOT NULL,
    is_metric         double precision[] NOT NULL,
    oos_metric        double precision[] NOT NULL,
    PRIMARY KEY (sweep_id, fold),
    CHECK (train_end < test_start AND test_start <= test_end)
);

-- the stitched out-of-sample run: each fold's chosen configuration trading its test window,
-- continuing from the previous fold's end state
CREATE TABLE sweep_walk_forward (
    sweep_id          text PRIMARY KEY REFERENCES sweeps (sweep_id) ON DELETE CASCADE,
    sessions          date[] NOT NULL,
    equity            bytea NOT NULL,             -- float64 little-endian, one per session
    metrics           jsonb NOT NULL,
    end_state         jsonb NOT NULL
);
