"""Room: warehouse/ingest. Ingestion: validate a whole file first, then bulk-load it through COPY in
one transaction. ``ingest(engine, kind, source)`` is the entry point (``store.py``).

One module per job, in the order a file goes through them:

- ``spec.py``: the file formats (columns and rules per kind) over the fact tables of
  ``warehouse/tables.py``, and ``IngestReport``;
- ``read.py``: reading a CSV or Parquet file (or taking a frame) without coercing types;
- ``validate.py``: the rules every row must follow, all checked before anything is written;
- ``instruments.py``: registering instruments, storing calendar sessions, and dating rows from
  each instrument's release rule (``release.py``: the rules themselves);
- ``refusals.py``: the rules decided against what is stored (``known-before-close``,
  ``rewrites-history``);
- ``keys.py``: one int64 per row ordered like its key (duplicates, index order);
- ``stage.py``: the staging COPY, overlapped with the INSERT on a second connection;
- ``store.py``: ``ingest`` itself: the transaction, the choice between the COPY of a first load
  straight into the fact table and staging, the insert SQL, the report.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# Lazy (PEP 562): a command that only reads (``macro-pipeline backtest`` dropping stale staging
# tables through ``stage``) must not import the readers (pyarrow's CSV and Parquet), the progress
# bar and the release rules' calendars; the public names load their module on first use.
_HOME = {
    "ingest_instruments": "instruments",
    "KINDS": "spec", "SPECS": "spec", "IngestReport": "spec", "KindSpec": "spec",
    "drop_stale_staging": "stage",
    "ingest": "store",
}

if TYPE_CHECKING:
    from macro_pipeline.warehouse.ingest.instruments import ingest_instruments
    from macro_pipeline.warehouse.ingest.spec import KINDS, SPECS, IngestReport, KindSpec
    from macro_pipeline.warehouse.ingest.stage import drop_stale_staging
    from macro_pipeline.warehouse.ingest.store import ingest


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


__all__ = ["KINDS", "SPECS", "IngestReport", "KindSpec", "drop_stale_staging", "ingest", "ingest_instruments"]
