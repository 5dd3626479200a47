-- Reference data: instruments, exchange calendars, universe membership, ingest batches.
-- Applied once by `macro-pipeline db migrate`, inside a transaction.

CREATE TABLE instruments (
    instrument_id  text PRIMARY KEY CHECK (instrument_id ~ '^[A-Za-z0-9_.\-]{1,32}$'),
    asset_class    text NOT NULL,
    currency       text NOT NULL DEFAULT 'USD',
    kind           text NOT NULL CHECK (kind IN ('spot', 'perp', 'index', 'macro')),
    -- exchange calendar code (exchange_calendars name, e.g. XNYS) or '24/7'
    calendar       text NOT NULL DEFAULT 'XNYS',
    -- default knowledge-time rule when a file carries no known_at (see warehouse/release.py)
    release_rule   text NOT NULL DEFAULT 'close'
                   CHECK (release_rule IN ('close', 'quarterly_30d', 'same_day')),
    description    text NOT NULL DEFAULT '',
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Sessions of each calendar in use, with their real close times (early closes included).
-- Filled from exchange_calendars; used in SQL to derive known_at = session close.
CREATE TABLE calendar_sessions (
    calendar      text NOT NULL,
    session_date  date NOT NULL,
    close_at      timestamptz NOT NULL,
    PRIMARY KEY (calendar, session_date)
);

-- One row per ingest call; every fact row points at the batch that stored it.
-- Batches are serialized by an advisory lock, so recorded_at grows in commit order and a
-- sensor cursor over recorded_at never skips a batch committed late.
CREATE TABLE ingest_batches (
    batch_id         bigserial PRIMARY KEY,
    kind             text NOT NULL,
    source           text NOT NULL,
    source_sha256    text,
    rows_in_file     bigint NOT NULL,
    rows_added       bigint NOT NULL,
    revisions_added  bigint NOT NULL,
    unchanged        bigint NOT NULL,
    recorded_at      timestamptz NOT NULL UNIQUE
);

-- Universe membership, bitemporal: [valid_from, valid_to) in valid time.
CREATE TABLE universe_membership (
    universe       text NOT NULL CHECK (universe ~ '^[A-Za-z0-9_.\-]{1,64}$'),
    instrument_id  text NOT NULL REFERENCES instruments (instrument_id),
    valid_from     date NOT NULL,
    valid_to       date,
    known_at       timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    batch_id       bigint NOT NULL REFERENCES ingest_batches (batch_id),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX universe_membership_pit ON universe_membership
    (universe, instrument_id, valid_from, known_at DESC, recorded_at DESC);
CREATE INDEX universe_membership_recorded ON universe_membership (recorded_at);
