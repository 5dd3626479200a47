"""Load the bundled demo data set (``macro_pipeline.demo_data``) through the normal ingestion path."""

from __future__ import annotations

import sqlalchemy as sa

from macro_pipeline.demo_data import load_demo_frames
from macro_pipeline.warehouse.ingest import IngestReport, ingest

# instruments first (everything references them), then facts
ORDER = (
    ("instruments", "instruments"),
    ("prices", "prices"),
    ("macro", "macro"),
    ("funding", "funding"),
    ("corporate_actions", "corporate-actions"),
    ("universe", "universe"),
    ("signals", "signals"),
)


def load_demo(engine: sa.Engine, *, show_progress: bool = False) -> list[IngestReport]:
    """Ingest every demo frame (idempotent: a second load adds nothing). Empty frames are skipped."""
    frames = load_demo_frames()
    reports = []
    for key, kind in ORDER:
        frame = frames[key]
        if frame.empty:
            continue
        reports.append(ingest(engine, kind, frame, name=f"demo:{key}", show_progress=show_progress))
    return reports
