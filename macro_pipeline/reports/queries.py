"""What the reports read, composed from the warehouse's reads (``warehouse/report_reads.py``,
``warehouse/runs.py``); no SQL here. Nothing here writes.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from macro_pipeline.warehouse.report_reads import (
    current_runs_of_window,
    instrument_kind,
    run_ids_like,
)

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 6


def run_ids_matching(engine: sa.Engine, text: str) -> list[str]:
    """Run ids equal to ``text`` or, for a hex string of at least ``MIN_PREFIX`` characters,
    starting with it (at most 6 returned: enough to show an ambiguity)."""
    text = text.strip().lower()
    if not _HEX.match(text) or len(text) < MIN_PREFIX:
        return []
    rows = run_ids_like(engine, text)
    return [text] if text in rows else rows


def counterpart_run(engine: sa.Engine, strategy_id: str, window_start, window_end, config: dict,
                    start_state: dict | None) -> str | None:
    """The newest current run of the same strategy, window, start state and config except for the
    opposite ``clean`` flag: the clean reference of a realistic run, or the other way round."""
    clean = bool(config.get("clean"))
    rest = {k: v for k, v in config.items() if k != "clean"}
    for row in current_runs_of_window(engine, strategy_id, window_start, window_end, not clean):
        other = {k: v for k, v in dict(row["config"]).items() if k != "clean"}
        if other == rest and (row["start_state"] or None) == (start_state or None):
            return row["run_id"]
    return None


def instrument_exists(engine: sa.Engine, instrument_id: str) -> bool:
    return instrument_kind(engine, instrument_id) is not None
