"""Room: warehouse/ingest/keys. One int64 per row, ordered like the row's key: how duplicates are
found (``validate.py``) and how rows are put in the unique index's order (``stage.py``), with no
hashing of tuples and no Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.warehouse.ingest.spec import DATE_COLS


def row_codes(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 per row ordering rows like the tuple of their codes (a mixed-radix number).

    ``parts``: (codes in [0, base), base) per column, most significant first. Before the number
    could overflow, the partial result is renumbered by dense rank (which keeps its order).
    """
    combined, radix = np.zeros(len(parts[0][0]), dtype="int64"), 1
    for codes, base in parts:
        if radix * base >= 2**62:
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1).astype("int64")
            radix = int(combined.max()) + 1
        combined = combined * base + codes
        radix *= base
    return combined


def order_codes(s: pd.Series) -> tuple[np.ndarray, int]:
    """(codes, base): integers in [0, base) ordered like the values, 0 for null.

    Dates (validated: whole days) use their day number, no hashing; other columns are factorized
    with sorted uniques (a Categorical by its categories).
    """
    if s.name in DATE_COLS and s.dtype == "datetime64[us]":
        values = s.to_numpy()
        nat = np.isnat(values)
        days = values.astype("datetime64[D]").view("int64")
        lo = 0 if nat.all() else int(days[~nat].min())
        codes = np.where(nat, 0, days - lo + 1)
        return codes, int(codes.max()) + 1
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype("int64") + 1, len(uniques) + 1


def is_increasing(codes: np.ndarray) -> bool:
    return len(codes) < 2 or bool(np.all(codes[1:] > codes[:-1]))
