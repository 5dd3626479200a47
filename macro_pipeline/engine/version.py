"""Engine version, stored with every backtest run; bump it when any number could change."""

ENGINE_VERSION = "1.1.0"  # 1.1: per-session cash and borrow accrual use the calendar (365 on 24/7); metrics annualise by calendar
