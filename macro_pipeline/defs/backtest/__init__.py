"""The strategy side: signals, backtest, backtest_metrics and leaderboard assets, their
strategy x month partitions, checks and per-partition metadata."""
