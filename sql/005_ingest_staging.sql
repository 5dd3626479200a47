-- Staging for bulk ingestion (warehouse/ingest.py). An ingest COPYs its validated rows, chunk by
-- chunk, into unlogged tables here on a second connection while its own transaction inserts the
-- previous chunk into the fact table, and drops them when it ends. They are scratch copies: no
-- WAL, no crash safety needed. Tables left by an ingest whose process died are dropped by the
-- next ingest, which holds the ingest lock (so no other ingest is using them).
CREATE SCHEMA ingest_staging;
