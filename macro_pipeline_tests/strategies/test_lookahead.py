"""A strategy that peeks at tomorrow's price through the per-date reader is caught."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.params import StrategyParams, param
from macro_pipeline.warehouse.errors import LookAheadError

from . import world


class PeekParams(StrategyParams):
    kind = "peek"
    peek_days: int = param(
        1, "how many days past the decision date the strategy reads", lo=0, hi=10
    )


class Peek(Strategy):
    """Long the instruments whose newest close rose; reads closes date by date through
    ``view.at(d)`` up to d + peek_days (0 = honest, 1 = tomorrow's price: cheating)."""

    kind = "peek"
    Params = PeekParams
    default_universe = "U"

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        out = pd.DataFrame(0.0, index=view.decision_dates, columns=instruments)
        for d in view.decision_dates:
            panel = view.at(d).price_panel(
                instruments, end=d + pd.Timedelta(days=self.params.peek_days)
            )
            change = panel.iloc[-1] - panel.iloc[-2] if len(panel) > 1 else panel.iloc[-1] * 0
            out.loc[d] = (change > 0).astype(float) / len(instruments)
        return out


def _world(engine):
    d = world.sessions(6)
    world.instruments(engine, ["A", "B"])
    world.prices(engine, d, A=[1, 2, 1, 2, 3, 2], B=[5, 4, 6, 7, 6, 8])
    world.universe(engine, "U", {"A": (d[0], None), "B": (d[0], None)})
    return d


def test_a_strategy_reading_tomorrows_price_raises_lookahead(engine):
    d = _world(engine)
    view = world.view(engine, d[:-1])  # tomorrow's prices exist in the warehouse
    with pytest.raises(
        LookAheadError, match=r"look-ahead: prices for \['A', 'B'\] up to 2021-03-02"
    ):
        Peek({"peek_days": 1}).weights(view)


def test_the_honest_per_date_version_equals_the_aligned_computation(engine):
    d = _world(engine)
    view = world.view(engine, d)
    w = Peek({"peek_days": 0}).weights(view)
    close = view.aligned_prices(["A", "B"])
    expected = (close.diff() > 0).astype(float) / 2
    np.testing.assert_array_equal(w.to_numpy(), expected.to_numpy())
