"""Every built-in kind on a tiny hand-worked world, ingested through the real ingestion path.

Expected weights are written as the rule or formula that produces them, on 8-15 sessions.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.strategies.kinds.atr_breakout import AtrBreakout
from macro_pipeline.strategies.kinds.buy_and_hold import BuyAndHold
from macro_pipeline.strategies.kinds.ema_crossover import EmaCrossover
from macro_pipeline.strategies.kinds.external import External
from macro_pipeline.strategies.kinds.funding_carry import FundingCarry
from macro_pipeline.strategies.kinds.macro_regime import MacroRegime
from macro_pipeline.strategies.kinds.rsi_mean_revert import RsiMeanRevert
from macro_pipeline.strategies.kinds.ts_momentum import TsMomentum
from macro_pipeline.warehouse.ingest import ingest

from . import world

NAN = float("nan")


def frame(dates, **cols) -> pd.DataFrame:
    out = pd.DataFrame(
        cols, index=pd.DatetimeIndex(dates.to_numpy(), name="decision_date"), dtype=float
    )
    return out


# --------------------------------------------------------------------------- buy_and_hold


def test_buy_and_hold_equal_weight_over_members_known_with_a_price(engine):
    d = world.sessions(8)
    world.instruments(engine, ["A", "B", "C"])
    world.prices(engine, d, A=[10.0] * 8, B=[20.0] * 8, C=[NAN] * 3 + [5.0] * 5)
    # C is a member from d0 but that membership is announced only during session 4; B leaves at d5
    world.universe(
        engine,
        "U",
        {
            "A": (d[0], None),
            "B": (d[0], d[5]),
            "C": (d[0], None, world.close_time(d[4]) - pd.Timedelta(hours=1)),
        },
    )
    w = BuyAndHold({"gross": 0.8}, universe="U").weights(world.view(engine, d))
    g = 0.8
    expected = frame(
        d,
        A=[g / 2] * 4 + [g / 3] + [g / 2] * 3,
        B=[g / 2] * 4 + [g / 3] + [0.0] * 3,
        C=[0.0] * 4 + [g / 3] + [g / 2] * 3,
    )
    pd.testing.assert_frame_equal(w, expected)


# --------------------------------------------------------------------------- ema_crossover


def _ema(xs, n):
    a, out = 2.0 / (n + 1), []
    for x in xs:
        out.append(x if not out else a * x + (1 - a) * out[-1])
    return np.array(out)


EMA_A = [10, 11, 12, 13, 12, 11, 10, 9, 10, 11, 12, 13]
EMA_B = [20, 19, 18.5, 18, 18.2, 19, 20, 21, 20, 19, 18, 17.5]


@pytest.mark.parametrize("allow_short", [True, False])
def test_ema_crossover_signal_and_inverse_vol_risk_budget(engine, allow_short):
    d = world.sessions(12)
    world.instruments(engine, ["A", "B"])
    world.prices(engine, d, A=EMA_A, B=EMA_B)
    world.universe(engine, "U", {"A": (d[0], None), "B": (d[0], None)})
    fast, slow, vol_window = 2, 4, 3
    w = EmaCrossover(
        {"fast": fast, "slow": slow, "vol_window": vol_window, "allow_short": allow_short},
        universe="U",
    ).weights(world.view(engine, d))

    sig, inv = {}, {}
    for name, xs in (("A", EMA_A), ("B", EMA_B)):
        s = np.sign(_ema(xs, fast) - _ema(xs, slow))
        sig[name] = s if allow_short else np.maximum(s, 0)
        r = np.diff(np.log(xs))  # r[t-1] = log(c_t / c_{t-1})
        inv[name] = np.array(
            [
                1 / statistics.stdev(r[t - vol_window : t]) if t >= vol_window else NAN
                for t in range(len(xs))
            ]
        )
    expected = {}
    for name in ("A", "B"):
        col = sig[name] * inv[name] / (inv["A"] + inv["B"])
        col[: max(slow - 1, vol_window)] = 0.0  # slow EMA needs 4 closes, sigma needs 3 returns
        expected[name] = col
    pd.testing.assert_frame_equal(w, frame(d, **expected), rtol=1e-12)
    assert (w["A"] > 0).any() and (
        (w["A"] < 0).any() if allow_short else (w["A"] == 0).iloc[3:].any()
    )


# --------------------------------------------------------------------------- rsi_mean_revert


def test_rsi_mean_revert_wilder_rsi_entry_exit_equal_weight(engine):
    d = world.sessions(9)
    world.instruments(engine, ["A", "B"])
    world.prices(
        engine, d, A=[100, 99, 98, 97, 98, 99, 99, 99, 99], B=[50, 49, 48, 47, 46, 45, 44, 45, 47]
    )
    world.universe(engine, "U", {"A": (d[0], None), "B": (d[0], None)})
    s = RsiMeanRevert({"window": 3, "entry": 30.0, "exit": 55.0}, universe="U")
    v = world.view(engine, d)
    rsi = s.rsi(v, ["A", "B"])

    def r(ag, al):
        return 100 - 100 / (1 + ag / al)

    # A: changes -1,-1,-1 seed AG=0, AL=1; then +1: AG=(0*2+1)/3, AL=(1*2+0)/3; then +1; then 0s
    ag, al = [0.0], [1.0]
    for g, lo in ((1, 0), (1, 0), (0, 0), (0, 0), (0, 0)):
        ag.append((ag[-1] * 2 + g) / 3)
        al.append((al[-1] * 2 + lo) / 3)
    np.testing.assert_allclose(
        rsi["A"].to_numpy()[3:], [r(a, b) if a else 0.0 for a, b in zip(ag, al, strict=True)]
    )
    assert rsi["A"].iloc[:3].isna().all()
    assert rsi["A"].iloc[4] == pytest.approx(100 - 100 / 1.5) and rsi["A"].iloc[5] == pytest.approx(
        100 - 100 / 2.25
    )
    # B: RSI 0 through row 6; row 7 (+1): 33.3 (hold), row 8 (+2): AG=8/9, AL=4/9 -> 66.7 > 55 (exit)
    assert rsi["B"].iloc[8] == pytest.approx(100 - 100 / 3)

    # A: in at row 3 (RSI 0 < 30), holds at 33.3, out at row 5 (55.6 > 55); B: in rows 3..7
    w = s.weights(v)
    expected = frame(d, A=[0, 0, 0, 0.5, 0.5, 0, 0, 0, 0], B=[0, 0, 0, 0.5, 0.5, 1, 1, 1, 0])
    pd.testing.assert_frame_equal(w, expected)


# --------------------------------------------------------------------------- atr_breakout

X_BARS = [
    (10.5, 9.5, 10),
    (10.4, 9.6, 10),
    (10.3, 9.7, 10),
    (12.2, 10.0, 12),
    (13.2, 11.8, 13),
    (13.0, 10.0, 10.5),
    (11, 10, 10.8),
    (11, 10, 10.9),
]


def test_atr_breakout_channel_entry_trailing_stop_exit_and_close_only_fallback(engine):
    d = world.sessions(8)
    world.instruments(engine, ["X", "Y", "Z"])
    world.ohlc(engine, d, "X", X_BARS)
    world.ohlc(engine, d, "Z", [(20 - lo, 20 - h, 20 - c) for h, lo, c in X_BARS])  # X mirrored
    world.prices(
        engine, d, Y=[5, 5, 5, 5, 5, 6, 6, 6]
    )  # close only: high/low fall back to the close
    world.universe(engine, "U", {i: (d[0], None) for i in "XYZ"})
    v = world.view(engine, d)
    # X: upper(3) = max(h0..h2) = 10.5 < c3 = 12: long. TR1..4 = 0.8, 0.6, 2.2, 1.4; ATR(2) seeds at
    # row 2 with (0.8 + 0.6) / 2 = 0.7, then ATR3 = (0.7 + 2.2) / 2 = 1.45, ATR4 = (1.45 + 1.4) / 2.
    atr3 = (0.7 + 2.2) / 2
    atr4 = (atr3 + 1.4) / 2
    stop3 = (
        12 - 1.0 * atr3
    )  # 10.55; row 4 closes at 13 > stop3, stop trails to max(10.55, 13 - ATR4)
    stop4 = max(stop3, 13 - atr4)
    assert X_BARS[5][2] < stop4  # row 5 closes at 10.5 < 11.575: exit
    # Y (close only): upper(5) = max(c2..c4) = 5 < 6: long from row 5; TR is |dc| so its stop is 6 - 0.5
    # each open position gets gross / n, n = 3 instruments eligible with a channel and an ATR
    params = {"channel": 3, "atr_window": 2, "atr_mult": 1.0}
    w = AtrBreakout(params, universe="U").weights(v)
    third = 1 / 3
    expected = frame(
        d, X=[0, 0, 0, third, third, 0, 0, 0], Y=[0, 0, 0, 0, 0, third, third, third], Z=[0.0] * 8
    )
    pd.testing.assert_frame_equal(w, expected)
    half = [0, 0, 0, 0.5, 0.5, 0, 0, 0]
    # with shorts, the mirror image Z is short exactly while X is long (n = 2 traded instruments)
    w = AtrBreakout(
        {**params, "allow_short": True, "instruments": ["X", "Z"]}, universe="U"
    ).weights(v)
    pd.testing.assert_frame_equal(w, frame(d, X=half, Z=[-x for x in half]))


# --------------------------------------------------------------------------- ts_momentum

TS_A = [100, 101, 102, 103.5, 104, 105.5, 106, 107, 108.5, 109]
TS_B = [50, 49.5, 49.2, 48.5, 48.4, 47.8, 47.5, 47.0, 46.9, 46.2]


@pytest.mark.parametrize("max_gross", [1.0, 10.0])
def test_ts_momentum_sign_vol_target_and_gross_cap(engine, max_gross):
    d = world.sessions(10)
    world.instruments(engine, ["A", "B"])
    world.prices(engine, d, A=TS_A, B=TS_B)
    world.universe(engine, "U", {"A": (d[0], None), "B": (d[0], None)})
    lookback, vol_window, target = 3, 3, 0.1
    w = TsMomentum(
        {
            "lookback": lookback,
            "vol_window": vol_window,
            "target_vol": target,
            "max_gross": max_gross,
        },
        universe="U",
    ).weights(world.view(engine, d))
    raw = {}
    for name, xs in (("A", TS_A), ("B", TS_B)):
        r = np.diff(np.log(xs))
        col = np.zeros(len(xs))
        for t in range(3, len(xs)):
            sigma = statistics.stdev(r[t - vol_window : t]) * math.sqrt(252)
            col[t] = np.sign(xs[t] / xs[t - lookback] - 1) * target / sigma
        raw[name] = col
    gross = np.abs(raw["A"]) + np.abs(raw["B"])
    scale = np.where(gross > max_gross, max_gross / np.where(gross > 0, gross, 1), 1.0)
    pd.testing.assert_frame_equal(w, frame(d, A=raw["A"] * scale, B=raw["B"] * scale), rtol=1e-12)
    assert (w["A"].iloc[3:] > 0).all() and (w["B"].iloc[3:] < 0).all()
    if max_gross == 1.0:  # these low-vol series want more than 1x: the cap binds exactly
        np.testing.assert_allclose(w.abs().sum(axis=1).iloc[3:], 1.0)


# --------------------------------------------------------------------------- macro_regime


def _macro_world(engine):
    d = world.sessions(15, start="2021-04-26")  # Apr 26 .. May 14
    world.instruments(engine, ["EQ", "BD", "CM"])
    world.instruments(
        engine, ["GDP", "CPI"], kind="macro", asset_class="macro", release_rule="quarterly_30d"
    )
    world.prices(engine, d, EQ=[NAN, NAN] + [100.0] * 13, BD=[100.0] * 15, CM=[100.0] * 15)
    world.universe(engine, "X", {i: ("2021-01-01", None) for i in ("EQ", "BD", "CM")})

    def at(day):
        return pd.Timestamp(f"{day} 13:30", tz="UTC")

    rows = [  # (series, quarter, value, known_at)
        ("GDP", "2020-09-30", 100.0, at("2020-10-30")),
        ("GDP", "2020-12-31", 101.0, at("2021-01-29")),
        ("GDP", "2020-12-31", 100.8, at("2021-03-31")),  # Q4 revised before the window
        ("GDP", "2021-03-31", 100.9, at("2021-04-30")),  # Q1 first print (row 4): 0.4 % annualised
        ("GDP", "2021-03-31", 101.6, at("2021-05-07")),  # Q1 revised (row 9): 3.2 %
        ("CPI", "2019-12-31", 100.0, at("2020-01-30")),
        ("CPI", "2020-03-31", 100.0, at("2020-04-30")),
        ("CPI", "2020-06-30", 100.5, at("2020-07-30")),
        ("CPI", "2020-09-30", 101.0, at("2020-10-30")),
        ("CPI", "2020-12-31", 101.5, at("2021-01-29")),
        ("CPI", "2021-03-31", 101.0, at("2021-04-30")),  # first print (row 4): 1.0 % y/y
        ("CPI", "2021-03-31", 104.0, at("2021-05-12")),  # revised (row 12): 4.0 % y/y
    ]
    ingest(
        engine, "macro", pd.DataFrame(rows, columns=["series_id", "obs_date", "value", "known_at"])
    )
    return d


def test_macro_regime_real_time_growth_inflation_and_allocation_table(engine):
    d = _macro_world(engine)
    s = MacroRegime(
        {
            "growth_series": "GDP",
            "inflation_series": "CPI",
            "equity": "EQ",
            "bond": "BD",
            "commodity": "CM",
        },
        universe="X",
    )
    v = world.view(engine, d)
    x = s.inputs(v)
    g = {
        "before": 1.008**4 - 1,
        "first": (100.9 / 100.8) ** 4 - 1,
        "revised": (101.6 / 100.8) ** 4 - 1,
    }
    np.testing.assert_allclose(
        x["growth"], [g["before"]] * 4 + [g["first"]] * 5 + [g["revised"]] * 6
    )
    np.testing.assert_allclose(
        x["inflation"], [101.5 / 100 - 1] * 4 + [101 / 100 - 1] * 8 + [104 / 100 - 1] * 3
    )
    # the same inputs read date by date through the per-date reader (vintage in force at a(d))
    for day in d:
        m = v.at(day).macro_panel(["GDP", "CPI"], end=day)
        gdp, cpi = m["GDP"].dropna(), m["CPI"].dropna()
        assert x.loc[day, "growth"] == pytest.approx((gdp.iloc[-1] / gdp.iloc[-2]) ** 4 - 1)
        assert x.loc[day, "inflation"] == pytest.approx(cpi.iloc[-1] / cpi.iloc[-5] - 1)

    regimes = ["goldilocks"] * 4 + ["deflation"] * 5 + ["goldilocks"] * 3 + ["overheating"] * 3
    assert s.regimes(v).tolist() == regimes
    table = {
        "goldilocks": (0.6, 0.4, 0.0),
        "deflation": (0.0, 1.0, 0.0),
        "overheating": (0.5, 0.0, 0.5),
    }
    eq, bd, cm = (np.array([table[r][k] for r in regimes]) for k in range(3))
    eq[:2] = 0.0  # no EQ price known yet: that sleeve stays in cash
    pd.testing.assert_frame_equal(s.weights(v), frame(d, EQ=eq, BD=bd, CM=cm))


def test_macro_regime_goes_flat_when_growth_prints_are_stale(engine):
    d = _macro_world(engine)
    s = MacroRegime(
        {
            "growth_series": "GDP",
            "inflation_series": "CPI",
            "equity": "EQ",
            "bond": "BD",
            "commodity": "CM",
            "max_staleness_days": 3,
        },
        universe="X",
    )
    # days since the growth value first appeared (rows 0, 4 and 9): Apr 26 .. May 14
    ages = [0, 1, 2, 3, 0, 3, 4, 5, 6, 0, 3, 4, 5, 6, 7]
    regimes = s.regimes(world.view(engine, d))
    assert (regimes == "flat").tolist() == [a > 3 for a in ages]


# --------------------------------------------------------------------------- funding_carry

# per-day funding rate (per 8h settlement); None: no settlement that day
DAY_RATES = [1e-4, 1e-4, 3e-5, -1e-5, -2e-5, 6e-5, None, 2e-4, 4e-5, 1e-4, -5e-5, 0.0]


def _carry_world(engine):
    d = world.sessions(len(DAY_RATES), calendar="24/7")
    world.instruments(engine, ["PERP"], kind="perp", calendar="24/7", asset_class="crypto")
    world.prices(engine, d, PERP=[100.0] * len(d))
    world.universe(engine, "C", {"PERP": (d[0], None)})
    rows = []
    for day, rate in zip(d, DAY_RATES, strict=True):
        if rate is not None:  # settlements of UTC day `day`: 08:00, 16:00 and 00:00 of the next day
            for h in (8, 16, 24):
                rows.append(((day + pd.Timedelta(hours=h)).tz_localize("UTC"), rate))
    ingest(
        engine,
        "funding",
        pd.DataFrame(rows, columns=["ts", "rate"]).assign(instrument_id="PERP", interval_hours=8.0),
    )
    return d


@pytest.mark.parametrize(
    ("lookback", "held"),
    [
        # lookback 1: in at 1e-4 (>= 5e-5), holds at 3e-5 (>= 0), out at -1e-5, back in at 6e-5, flat on
        # the day without settlements, in at 2e-4, out at -5e-5, stays out at 0 (< 5e-5)
        (1, [1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0]),
        # lookback 2 (mean of the known daily rates of the last 2 days): 6.5e-5, 1e-5 hold; -1.5e-5 out;
        # 2e-5 stays out; 6e-5 (only one day known) in; ...; 2.5e-5 holds; -2.5e-5 out
        (2, [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]),
    ],
)
def test_funding_carry_simple_thresholds_short_to_receive_positive_funding(engine, lookback, held):
    d = _carry_world(engine)
    s = FundingCarry(
        {
            "mode": "simple",
            "instrument": "PERP",
            "lookback": lookback,
            "entry_threshold": 5e-5,
            "exit_threshold": 0.0,
            "gross": 0.5,
        },
        universe="C",
        calendar="24/7",
    )
    w = s.weights(world.view(engine, d, "24/7"))
    pd.testing.assert_frame_equal(
        w, frame(d, PERP=[-0.5 * h for h in held])
    )  # longs pay: short to receive


def test_funding_carry_composite_score(engine):
    d = _carry_world(engine)
    s = FundingCarry(
        {
            "mode": "composite",
            "instrument": "PERP",
            "fast": 1,
            "slow": 3,
            "trend_weight": 1.0,
            "vol_floor": 1e-6,
            "entry_score": 1.0,
            "exit_score": 0.0,
        },
        universe="C",
        calendar="24/7",
    )
    v = world.view(engine, d, "24/7")
    r = [NAN if x is None else x for x in DAY_RATES]
    expected = []
    for t in range(len(r)):
        window = r[t - 2 : t + 1] if t >= 2 else []
        if len(window) < 3 or any(map(math.isnan, window)):
            expected.append(NAN)  # the slow mean and volatility need 3 known days
            continue
        fast, slow, sd = r[t], statistics.mean(window), statistics.stdev(window)
        expected.append((fast + 1.0 * (fast - slow)) / max(sd, 1e-6))
    np.testing.assert_allclose(s.signal(v).to_numpy(), expected, rtol=1e-12)
    # scores: row 5 = 2.52 (enter), rows 6-8 undefined (flat), row 9 = 1.07 (enter), row 10 < 0 (exit)
    held = [0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    pd.testing.assert_frame_equal(s.weights(v), frame(d, PERP=[-1.0 * h for h in held]))


# --------------------------------------------------------------------------- external


def test_external_weights_are_the_signal_as_known_at_each_decision(engine):
    d = world.sessions(8)
    world.instruments(engine, ["A", "B", "C"])
    world.prices(engine, d, A=[1.0] * 8, B=[1.0] * 8, C=[1.0] * 8)
    world.universe(engine, "U", {"A": (d[0], None), "B": (d[0], None)})  # C is not a member
    c = world.close_time
    ingest(
        engine,
        "signals",
        pd.DataFrame(
            {
                "signal_name": "sig",
                "instrument_id": ["A", "B", "C", "A", "B", "A"],
                "obs_date": [d[1], d[1], d[1], d[4], d[4], d[1]],
                "value": [0.3, 0.7, 0.5, 0.6, 0.2, 0.9],
                "known_at": [
                    c(d[1]),
                    c(d[1]),
                    c(d[1]),
                    c(d[4]),
                    c(d[4]),
                    c(d[3]) - pd.Timedelta(hours=2),
                ],
            }
        ),
    )  # the last row corrects A's d1 value, known only during session 3: it does not reach back
    w = External({"signal_name": "sig"}, universe="U").weights(
        world.view(engine, d), ["A", "B", "C"]
    )
    expected = frame(
        d,
        A=[0, 0.3, 0.3, 0.9, 0.6, 0.6, 0.6, 0.6],
        B=[0, 0.7, 0.7, 0.7, 0.2, 0.2, 0.2, 0.2],
        C=[0.0] * 8,
    )
    pd.testing.assert_frame_equal(w, expected)
