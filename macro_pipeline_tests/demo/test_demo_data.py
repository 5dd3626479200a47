"""Demo data layer: contract shapes, invariants, modelled vintages, synthetic perp, determinism."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import macro_pipeline.demo.load as demo
import macro_pipeline.demo.load as demo_frames

SEED = 20240101
PACKAGE_DIR = Path(demo.__file__).resolve().parent / "data"

EXPECTED_DTYPES = {
    "instruments": dict.fromkeys(demo.FRAME_COLUMNS["instruments"], "str"),
    "prices": {
        "instrument_id": "str",
        "obs_date": "datetime64[ns]",
        **dict.fromkeys(("open", "high", "low", "close", "volume"), "float64"),
    },
    "macro": {
        "series_id": "str",
        "obs_date": "datetime64[ns]",
        "value": "float64",
        "known_at": "datetime64[ns, UTC]",
    },
    "funding": {
        "instrument_id": "str",
        "ts": "datetime64[ns, UTC]",
        "rate": "float64",
        "interval_hours": "float64",
    },
    "corporate_actions": {
        "instrument_id": "str",
        "ex_date": "datetime64[ns]",
        "action": "str",
        "value": "float64",
    },
    "universe": {
        "universe": "str",
        "instrument_id": "str",
        "valid_from": "datetime64[ns]",
        "valid_to": "datetime64[ns]",
    },
    "signals": {
        "signal_name": "str",
        "instrument_id": "str",
        "obs_date": "datetime64[ns]",
        "value": "float64",
    },
}
KEYS = {
    "instruments": ["instrument_id"],
    "prices": ["instrument_id", "obs_date"],
    "macro": ["series_id", "obs_date", "known_at"],
    "funding": ["instrument_id", "ts"],
    "universe": ["universe", "instrument_id"],
    "signals": ["signal_name", "instrument_id", "obs_date"],
}
REQUIRED = {
    "prices": ["instrument_id", "obs_date", "close"],
    "macro": ["series_id", "obs_date", "value", "known_at"],
    "funding": ["instrument_id", "ts", "rate", "interval_hours"],
    "universe": ["universe", "instrument_id", "valid_from"],
    "signals": ["signal_name", "instrument_id", "obs_date", "value"],
    "instruments": list(demo.FRAME_COLUMNS["instruments"]),
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return demo.load_demo_frames(seed=SEED)


def _raw(name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(PACKAGE_DIR / demo.DEMO_DATA_FILES[name], **kwargs)


def _fingerprint(df: pd.DataFrame) -> tuple:
    hashes = pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
    return tuple(df.columns), tuple(str(t) for t in df.dtypes), hashes


# --- contract -------------------------------------------------------------------------------


def test_frames_have_exactly_the_contract_columns_and_dtypes(frames):
    assert list(frames) == [
        "instruments",
        "prices",
        "macro",
        "funding",
        "corporate_actions",
        "universe",
        "signals",
    ]
    for name, dtypes in EXPECTED_DTYPES.items():
        df = frames[name]
        assert list(df.columns) == list(dtypes), name
        assert {c: str(t) for c, t in df.dtypes.items()} == dtypes, name
        assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0, name


def test_row_counts(frames):
    counts = {name: len(df) for name, df in frames.items()}
    assert counts["instruments"] == 20 + 4 + 1 + 11 + 12 + 2  # ... + BTC-PERP and BTC-SPOT
    # 20 x 8313 equities + 2 x 5031 indices + WTI + VIX + UST10_TR + 2922 BTC days (perp and spot)
    assert counts["prices"] == 20 * 8313 + 2 * 5031 + 8291 + 1259 + 6806 + 2 * 2922
    assert counts["funding"] == 2922 * 3
    assert counts["corporate_actions"] == 0
    assert counts["universe"] == 20 + 5 + 2 + 27  # US_EQ20, CROSS_ASSET, CRYPTO, ALL
    assert counts["signals"] == 20 * 395


def test_required_columns_are_finite_and_keys_unique(frames):
    for name, cols in REQUIRED.items():
        df = frames[name]
        assert not df[cols].isna().any().any(), name
        numeric = df[cols].select_dtypes("number")
        assert np.isfinite(numeric.to_numpy()).all(), name
        assert not df.duplicated(KEYS[name]).any(), name


def test_instruments_reference_data(frames):
    inst = frames["instruments"]
    assert inst["instrument_id"].map(lambda s: bool(re.fullmatch(r"[A-Z0-9_.-]{1,32}", s))).all()
    assert set(inst["asset_class"]) <= {
        "equity",
        "index",
        "commodity",
        "rates",
        "volatility",
        "crypto",
        "macro",
    }
    assert set(inst["kind"]) <= {"spot", "perp", "index", "macro"}
    assert set(inst["calendar"]) <= {"XNYS", "24/7"}
    assert set(inst["release_rule"]) <= {"close", "quarterly_30d"}
    assert (inst["currency"] == "USD").all()
    by_id = inst.set_index("instrument_id")
    assert tuple(by_id.loc["BTC-PERP", ["asset_class", "kind", "calendar", "release_rule"]]) == (
        "crypto",
        "perp",
        "24/7",
        "close",
    )
    assert "SYNTHETIC" in by_id.loc["BTC-PERP", "description"]
    assert "MODELLED" in by_id.loc["UST10_TR", "description"]
    assert (by_id.loc[list(demo.UST_TENORS.values()), "kind"] == "macro").all()
    assert (by_id.loc["US_REALGDP", ["kind", "release_rule"]] == ["macro", "quarterly_30d"]).all()
    # every fact refers to a declared instrument
    ids = set(inst["instrument_id"])
    assert set(frames["prices"]["instrument_id"]) <= ids
    assert set(frames["macro"]["series_id"]) <= ids
    assert set(frames["funding"]["instrument_id"]) <= ids


# --- prices ---------------------------------------------------------------------------------


def test_prices_positive_ohlc_consistent_and_without_known_at(frames):
    p = frames["prices"]
    assert "known_at" not in p.columns
    assert (p["close"] > 0).all()
    assert (p["obs_date"] == p["obs_date"].dt.normalize()).all()
    ohlc = p.dropna(subset=["open", "high", "low"])
    assert set(ohlc["instrument_id"]) == {"SPX", "NASDAQ"}
    assert (ohlc[["open", "high", "low"]] > 0).all().all()
    assert (ohlc["high"] >= ohlc["low"]).all()
    assert (ohlc["high"] >= ohlc[["open", "close"]].max(axis=1)).all()
    assert (ohlc["low"] <= ohlc[["open", "close"]].min(axis=1)).all()
    assert (p["volume"].dropna() > 0).all()
    close_only = p[~p["instrument_id"].isin(["SPX", "NASDAQ"])]
    assert close_only[["open", "high", "low", "volume"]].isna().all().all()


def test_xnys_prices_are_on_xnys_sessions(frames):
    p = frames["prices"]
    inst = frames["instruments"].set_index("instrument_id")
    xnys_ids = inst.index[inst["calendar"] == "XNYS"]
    xnys = p[p["instrument_id"].isin(xnys_ids)]
    assert xnys["obs_date"].isin(demo_frames._xnys_sessions()).all()


def test_prices_match_the_raw_files(frames):
    p = frames["prices"].set_index(["instrument_id", "obs_date"])
    assert p.loc[("AAPL", pd.Timestamp("1990-01-02")), "close"] == 0.264
    assert p.loc[("XOM", pd.Timestamp("2022-12-28")), "close"] == 106.627
    spx = p.loc[("SPX", pd.Timestamp("2018-12-31"))]
    assert tuple(spx[["open", "high", "low", "close", "volume"]]) == (
        2498.939941,
        2509.23999,
        2482.820068,
        2506.850098,  # Close, not Adj Close
        3442870000.0,
    )
    # the two zero-volume NASDAQ prints are missing, not zero
    assert np.isnan(p.loc[("NASDAQ", pd.Timestamp("2015-05-12")), "volume"])
    assert p.loc[("VIX", pd.Timestamp("2019-01-03")), "close"] == 25.45


def test_wti_gaps_are_dropped_not_filled(frames):
    raw = _raw("wti", na_values=["."])
    raw["obs_date"] = pd.to_datetime(raw["Date"], format="%m/%d/%Y")
    wti = frames["prices"].query("instrument_id == 'WTI'").set_index("obs_date")["close"]
    gaps = raw.loc[raw["DCOILWTICO"].isna(), "obs_date"]
    assert len(gaps) == 290 and not gaps.isin(wti.index).any()
    printed = raw.dropna().set_index("obs_date")["DCOILWTICO"]
    assert wti.index.isin(printed.index).all()
    np.testing.assert_array_equal(wti.to_numpy(), printed.loc[wti.index].to_numpy())
    # only prints on days the NYSE was closed are left out
    off_session = printed.index.difference(wti.index)
    assert len(off_session) == 30
    assert not off_session.isin(demo_frames._xnys_sessions()).any()


def test_ust10_tr_follows_the_duration_formula_by_hand(frames):
    tr = frames["prices"].query("instrument_id == 'UST10_TR'")["close"].to_numpy()
    y0, y1, y2 = 0.0794, 0.0799, 0.0798  # 10y yields 1990-01-02..04 in the file
    d = demo.UST10_TR_DURATION
    level1 = 100.0 * (1 + y0 / 252 - d * (y1 - y0))
    level2 = level1 * (1 + y1 / 252 - d * (y2 - y1))
    np.testing.assert_allclose(tr[:3], [100.0, level1, level2], rtol=1e-12)


# --- macro ----------------------------------------------------------------------------------


def test_macro_known_at_never_precedes_obs_date(frames):
    m = frames["macro"]
    assert str(m["known_at"].dt.tz) == "UTC"
    assert (m["known_at"] >= m["obs_date"].dt.tz_localize("UTC")).all()


def test_treasury_yields_known_at_1600_new_york_and_blanks_skipped(frames):
    m = frames["macro"].set_index(["series_id", "obs_date"])
    winter = m.loc[("UST_10Y", pd.Timestamp("1990-01-02"))]
    summer = m.loc[("UST_10Y", pd.Timestamp("2016-07-01"))]
    assert winter["known_at"] == pd.Timestamp("1990-01-02 21:00", tz="UTC")  # EST
    assert summer["known_at"] == pd.Timestamp("2016-07-01 20:00", tz="UTC")  # EDT
    assert winter["value"] == 0.0794  # decimal, not percent
    raw = _raw("treasury")
    assert (frames["macro"]["series_id"] == "UST_1M").sum() == raw["1month"].notna().sum()
    assert (frames["macro"]["series_id"] == "UST_30Y").sum() == raw["30year"].notna().sum()


def _vintages(frames, series_id: str) -> pd.DataFrame:
    m = frames["macro"]
    return m[m["series_id"] == series_id].sort_values(["obs_date", "known_at"])


def test_vintages_are_ordered_first_second_final(frames):
    quarterly = frames["macro"][frames["macro"]["series_id"].str.startswith("US_")]
    assert quarterly["series_id"].nunique() == 12
    per_key = quarterly.groupby(["series_id", "obs_date"])["known_at"]
    assert (per_key.size() == 3).all()
    assert per_key.apply(lambda s: s.is_monotonic_increasing and s.is_unique).all()
    # obs_date is the quarter-end date
    assert quarterly["obs_date"].dt.is_quarter_end.all()


def test_first_print_is_quarter_end_plus_30_days_at_0830_new_york(frames):
    gdp = _vintages(frames, "US_REALGDP").groupby("obs_date")["known_at"].apply(list)
    # 1959-04-30 is after the 1959-04-26 switch to EDT: 08:30 EDT == 12:30 UTC
    assert gdp.loc[pd.Timestamp("1959-03-31")] == [
        pd.Timestamp("1959-04-30 12:30", tz="UTC"),
        pd.Timestamp("1959-05-30 12:30", tz="UTC"),
        pd.Timestamp("1959-06-29 12:30", tz="UTC"),
    ]
    # a winter first print: 08:30 EST == 13:30 UTC
    first = gdp.loc[pd.Timestamp("2008-12-31")][0]
    assert first == pd.Timestamp("2009-01-30 13:30", tz="UTC")
    lag = pd.Timedelta(days=30)
    local = first.tz_convert("America/New_York")
    assert (local.hour, local.minute) == (8, 30)
    assert local.tz_localize(None).normalize() == pd.Timestamp("2008-12-31") + lag


def test_vintages_converge_to_the_files_final_value(frames):
    raw = _raw("macro")
    quarter_end = pd.PeriodIndex.from_fields(
        year=raw["year"], quarter=raw["quarter"], freq="Q-DEC"
    ).end_time.normalize()
    for name in demo.MACRO_FIRST_PRINT_ERROR:
        v = _vintages(frames, "US_" + name.upper())
        first, second, final = (v.groupby("obs_date")["value"].nth(k).to_numpy() for k in range(3))
        keep = slice(1, None) if name in ("infl", "realint") else slice(None)
        np.testing.assert_array_equal(final, raw[name].to_numpy()[keep], err_msg=name)
        np.testing.assert_array_equal(
            v["obs_date"].unique(), quarter_end[keep].to_numpy(), err_msg=name
        )
        assert (np.abs(second - final) <= np.abs(first - final) + 1e-12).all(), name
        assert (first != final).mean() > 0.5, name  # revisions really happen
        kind, sd = demo.MACRO_FIRST_PRINT_ERROR[name]
        err = (first - final) / final if kind == "relative" else first - final
        assert np.abs(err).max() < 6 * sd + 0.01, name


def test_vintage_schedule_is_configurable_and_validated():
    two = (demo.Vintage("advance", 45, 1.0), demo.Vintage("final", 120, 0.0))
    m = demo_frames.quarterly_macro(SEED, two)
    gdp = m[m["series_id"] == "US_REALGDP"].sort_values("known_at")
    assert len(gdp) == 2 * 203
    assert gdp["known_at"].iloc[0] == pd.Timestamp("1959-05-15 12:30", tz="UTC")
    with pytest.raises(ValueError, match="error_scale"):
        demo_frames.quarterly_macro(SEED, (demo.Vintage("only", 30, 1.0),))
    with pytest.raises(ValueError, match="increasing"):
        demo_frames.quarterly_macro(SEED, (demo.Vintage("a", 60, 1.0), demo.Vintage("b", 30, 0.0)))


# --- synthetic perp -------------------------------------------------------------------------


def test_funding_settles_exactly_three_times_a_utc_day(frames):
    f = frames["funding"]
    assert "known_at" not in f.columns
    assert (f["instrument_id"] == "BTC-PERP").all()
    assert (f["interval_hours"] == 8.0).all()
    assert set(f["ts"].dt.hour) == {0, 8, 16}
    assert ((f["ts"].dt.minute == 0) & (f["ts"].dt.second == 0)).all()
    per_day = f.groupby(f["ts"].dt.floor("D")).size()
    assert (per_day == 3).all()
    days = frames["prices"].query("instrument_id == 'BTC-PERP'")["obs_date"]
    assert list(per_day.index.tz_localize(None)) == list(days)


def test_funding_has_positive_carry_and_negative_regimes(frames):
    rate = frames["funding"]["rate"].to_numpy()
    assert np.abs(rate).max() < 0.003  # a fraction per 8h, not percent
    assert 0.0 < np.mean(rate) < 0.0002
    negative = rate < 0
    assert 0.02 < negative.mean() < 0.5
    # at least one sustained negative spell (>= 3 days of settlements): a carry strategy exits
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, negative.astype(int), 0])))[::2]
    assert runs.max() >= 9
    assert (np.diff(negative.astype(int)) == 1).sum() >= 5  # several entries into negative


def test_perp_prices_are_one_daily_close_per_calendar_day(frames):
    btc = frames["prices"].query("instrument_id == 'BTC-PERP'")
    expected = pd.date_range("2015-01-01", "2022-12-31", freq="D")
    assert list(btc["obs_date"]) == list(expected)
    assert (btc["close"] > 0).all()


# --- corporate actions, universe, signals ---------------------------------------------------


def test_corporate_actions_empty_because_equities_are_adjusted(frames):
    ca = frames["corporate_actions"]
    assert ca.empty and list(ca.columns) == ["instrument_id", "ex_date", "action", "value"]
    assert "double count" in demo.__doc__


def test_universe_membership_and_first_dates(frames):
    u = frames["universe"]
    for name, members in demo.DEMO_UNIVERSES.items():
        assert sorted(u.loc[u["universe"] == name, "instrument_id"]) == sorted(members)
    first = frames["prices"].groupby("instrument_id")["obs_date"].min()
    assert (u["valid_from"].to_numpy() == first.loc[u["instrument_id"]].to_numpy()).all()
    # leaves the day after its last price when its data ends before the data set's newest date
    last = frames["prices"].groupby("instrument_id")["obs_date"].max()
    newest = frames["prices"]["obs_date"].max()
    for row in u.itertuples():
        if last[row.instrument_id] < newest:
            assert row.valid_to == last[row.instrument_id] + pd.Timedelta(days=1)
        else:
            assert pd.isna(row.valid_to)
    ended = set(u.loc[u["valid_to"].notna(), "instrument_id"])
    assert {"SPX", "NASDAQ", "UST10_TR"} <= ended
    assert demo.DEMO_UNIVERSES["CROSS_ASSET"] == ("SPX", "NASDAQ", "WTI", "UST10_TR", "BTC-PERP")


def test_external_signal_monthly_weights_on_last_session(frames):
    s = frames["signals"]
    assert (s["signal_name"] == "demo_external_weights").all()
    members = s.groupby("obs_date")["instrument_id"].apply(lambda ids: tuple(sorted(ids)))
    assert set(members) == {tuple(sorted(demo.EQUITY_TICKERS))}
    sessions = demo_frames._xnys_sessions()
    last_per_month = sessions.to_series().groupby(sessions.to_period("M")).max()
    dates = pd.DatetimeIndex(s["obs_date"].unique())
    assert dates.isin(last_per_month.to_numpy()).all()
    assert dates.min() == pd.Timestamp("1990-01-31") and dates.max() == pd.Timestamp("2022-11-30")
    assert (s["value"] >= 0).all()
    sums = s.groupby("obs_date")["value"].sum()
    assert ((sums <= 1.0) & (sums > 1.0 - 1e-4)).all()


# --- determinism and packaging --------------------------------------------------------------


def test_deterministic_and_read_from_the_package(frames, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no relative path to ../shared can resolve from here
    again = demo.load_demo_frames(seed=SEED)
    for name in frames:
        assert _fingerprint(again[name]) == _fingerprint(frames[name]), name
        pd.testing.assert_frame_equal(again[name], frames[name], check_exact=True)
    for file_name in demo.DEMO_DATA_FILES.values():
        path = demo.data_path(file_name)
        assert path.parent == PACKAGE_DIR and path.is_file()
        with gzip.open(path) as fh:
            assert fh.readline()
    source = Path(demo_frames.__file__).read_text()
    assert "../shared" not in source and "/work/shared" not in source
    assert (PACKAGE_DIR / "SOURCES.md").is_file()


def test_seed_moves_only_the_synthetic_parts(frames):
    other = 7
    m = demo_frames.quarterly_macro(other)
    gdp = m[m["series_id"] == "US_REALGDP"]
    ours = _vintages(frames, "US_REALGDP")
    assert not np.array_equal(gdp["value"].to_numpy(), ours["value"].to_numpy())
    assert not demo_frames.build_funding(other)["rate"].equals(frames["funding"]["rate"])
    # real data never depends on the seed
    prices = demo_frames.build_prices(other)
    synthetic = ["BTC-PERP", "BTC-SPOT"]
    real = ~prices["instrument_id"].isin(synthetic)
    ours_real = ~frames["prices"]["instrument_id"].isin(synthetic)
    pd.testing.assert_frame_equal(
        prices[real].reset_index(drop=True), frames["prices"][ours_real].reset_index(drop=True)
    )
