-- What each stored run read: its footprint, one row per entity (DESIGN section 4). Written by the
-- code path that reads (the point-in-time view), in the run's own transaction. The
-- point-in-time sensor matches new fact rows against the footprints of the current pipeline
-- months: a row can change a month only if its entity is here and it was visible to one of the
-- month's decisions (known_at <= last_decision, valid time not after the last decision date).
CREATE TABLE IF NOT EXISTS run_reads (
    run_id          text NOT NULL REFERENCES backtest_runs (run_id),
    source          text NOT NULL CHECK (source IN ('prices', 'macro', 'funding', 'corporate_actions',
                                                     'signals', 'universe')),
    entity          text NOT NULL,             -- instrument, macro series or universe id
    signal_name     text NOT NULL DEFAULT '',  -- external signals: the signal's name
    valid_from      date,                      -- first valid date read (NULL: nothing stored then)
    valid_to        date NOT NULL,             -- the run's last decision date
    first_decision  timestamptz NOT NULL,      -- decision time of the run's first session
    last_decision   timestamptz NOT NULL,      -- decision time of its last session
    PRIMARY KEY (run_id, source, entity, signal_name)
);
CREATE INDEX IF NOT EXISTS run_reads_entity ON run_reads (source, entity, signal_name);
