-- Per-session trading costs and perpetual funding of every stored run (reports plot them over
-- time). Nullable: runs stored before this file have only their totals (backtest_runs.summary).
ALTER TABLE daily_equity ADD COLUMN costs double precision;
ALTER TABLE daily_equity ADD COLUMN funding double precision;
COMMENT ON COLUMN daily_equity.costs IS 'trading costs paid in this session';
COMMENT ON COLUMN daily_equity.funding IS 'perpetual funding paid in this session (negative = received)';
