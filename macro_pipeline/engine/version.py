"""Engine version, stored with every backtest run; bump it when any number could change."""

ENGINE_VERSION = "1.0.0"
