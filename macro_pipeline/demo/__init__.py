"""The demo room: ``macro-pipeline demo`` / ``make demo`` end to end through Dagster (``run``), and
the bundled demo data set (``data/``: real public files and their ``SOURCES.md``) built into
ingestion frames and loaded into the warehouse (``load``)."""
