-- Reproductions: a run computed with an explicit system_as_of older than the warehouse's data
-- (`macro-pipeline backtest --system-as-of TS`) re-reads an earlier state of the warehouse. It
-- is stored for comparison and audit but never supersedes a run and never becomes current:
-- every "current result" reader (superseded_by logic, `runs list --current`, stitched equity,
-- leaderboard, reports) excludes it. `reproduces` names the run that was current for the same
-- strategy, window and settings when it was stored, if there was one.
ALTER TABLE backtest_runs ADD COLUMN reproduction boolean NOT NULL DEFAULT false;
ALTER TABLE backtest_runs ADD COLUMN reproduces text REFERENCES backtest_runs (run_id);
ALTER TABLE backtest_runs ADD CONSTRAINT backtest_runs_reproduction_never_current
    CHECK (NOT reproduction OR superseded_by IS NULL);
ALTER TABLE backtest_runs ADD CONSTRAINT backtest_runs_reproduces_only_reproductions
    CHECK (reproduction OR reproduces IS NULL);
COMMENT ON COLUMN backtest_runs.reproduction IS
    'computed as of an older system_as_of than the data: never supersedes, never current';
COMMENT ON COLUMN backtest_runs.reproduces IS 'the current run of the same strategy, window and settings it reproduces';

-- one current result per (strategy, window, settings), reproductions aside
DROP INDEX backtest_runs_one_current;
CREATE UNIQUE INDEX backtest_runs_one_current
    ON backtest_runs (strategy_id, window_start, window_end, config_hash)
    WHERE superseded_by IS NULL AND status = 'success' AND NOT reproduction;
