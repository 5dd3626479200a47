"""The demo data set loaded into the warehouse: real public market and macro files (in ``data/``),
plus clearly labelled modelled/synthetic parts, ingested through the normal ingestion path
(``load_demo``; idempotent).

``load_demo_frames(seed=20240101)`` returns long frames in the ingestion contract (keys
``instruments``, ``prices``, ``macro``, ``funding``, ``corporate_actions``, ``universe``,
``signals``). It is pure pandas (no database), reads only the files inside this package
(``data/``; see ``data/SOURCES.md`` for their origin and licences) and is deterministic: the same seed gives
byte-identical frames on every call. The seed drives only the modelled/synthetic parts; the real
data never depends on it.

Dtypes: ids and labels ``str``; dates (``obs_date``, ``ex_date``, ``valid_from``, ``valid_to``)
naive normalized ``datetime64[ns]``; ``known_at`` and ``ts`` ``datetime64[ns, UTC]``; numbers
``float64``.

What is REAL (values exactly as in the files)
---------------------------------------------
==================  ========================================================================
frame / ids         treatment
==================  ========================================================================
prices: 20 tickers  adjusted close -> ``close``; open/high/low/volume NaN (the file has none).
prices: SPX,NASDAQ  Open/High/Low/Close/Volume; ``Close`` (not Adj Close). A volume of 0 (two
                    NASDAQ days) is a missing print -> NaN.
prices: WTI         FRED DCOILWTICO; "." gaps are dropped, never filled. 30 spot prints dated
                    on days the NYSE was closed (1987-1992 holidays, 9/11, Sandy, 2007-01-02,
                    2018-12-05) are dropped: WTI uses the XNYS calendar and its "close" rule.
prices: VIX         close only; "." gaps dropped.
macro: UST_1M..30Y  constant-maturity yields as decimals, blanks skipped; ``known_at`` = 16:00
                    America/New_York on ``obs_date`` (UTC, DST-aware). Rows on Treasury-open,
                    NYSE-closed days (Good Fridays, ...) are kept: their known_at is explicit.
==================  ========================================================================

``prices`` has NO ``known_at`` column: the ingestion's default release rule fills it
(``close``: the session close of the instrument's calendar). Every XNYS-calendar price row is
on an XNYS session, so that rule is always defined.

What is DERIVED / MODELLED / SYNTHETIC
--------------------------------------
1. ``UST10_TR`` (DERIVED, MODELLED), in prices: a 10y Treasury total-return proxy from UST_10Y,
   ``r_t = y_{t-1}/252 - D * (y_t - y_{t-1})`` with modified duration ``D = 8``
   (``UST10_TR_DURATION``), level = ``100 * prod(1 + r)`` from the first 10y print. One 1/252
   year of carry per printed day whatever the calendar gap; no convexity, no roll-down, constant
   duration. Computed on every day the yield is printed, then only XNYS sessions are kept (a
   Good Friday move is in the next session's level).

2. Quarterly US macro ``US_<NAME>`` (MODELLED VINTAGES). The file holds FINAL REVISED values
   only; no release dates or revisions were observed. ``obs_date`` = quarter-end date. Each
   quarter gets one row per vintage in ``MACRO_VINTAGES``; vintage time = quarter end +
   ``lag_days`` calendar days at 08:30 America/New_York (``MACRO_RELEASE_LOCAL_TIME``), converted
   to UTC with DST (13:30 UTC in winter, 12:30 UTC in summer), no weekend/holiday roll.

   =======  ========  ============================================  ======================
   vintage  lag_days  value                                         error_scale
   =======  ========  ============================================  ======================
   first    30        final perturbed by the first-print error      1.0
   second   60        final perturbed by half that error           0.5
   final    90        the file's value, exactly                     0.0
   =======  ========  ============================================  ======================

   First-print error (``MACRO_FIRST_PRINT_ERROR``), with ``z ~ N(0,1)`` drawn once per (series,
   quarter) from the seed and shared by all vintages, so every revision moves monotonically
   toward the final value:

   ==========================================================  ==================================
   series                                                      first-print error
   ==========================================================  ==================================
   realgdp realcons realinv realgovt realdpi cpi m1 pop        ``final * (1 + 0.005 * z)``
   (levels)                                                    (sd 0.5 % of level), 3 decimals
   tbilrate unemp infl realint (rates, percent)                ``final + 0.2 * z`` (sd 0.2 pts),
                                                               2 decimals
   ==========================================================  ==================================

   This uniform scheme exists to exercise revision handling; it is not an estimate of real
   revision sizes (CPI, tbilrate and pop are in reality barely or never revised, and infl and
   realint are perturbed independently of cpi/tbilrate). Modelled tbilrate and unemp prints are
   floored at 0 (``MACRO_FLOORS``). ``infl`` and ``realint`` for 1959Q1
   are 0 placeholders in the file (no prior CPI to difference) and are dropped. The schedule is
   configurable: ``load_demo_frames(macro_vintages=...)``.

3a. ``BTC-SPOT`` (SYNTHETIC): the spot leg for delta-neutral carry, on the same GBM path as
   BTC-PERP (zero basis), calendar 24/7; universe ``CRYPTO`` = (BTC-SPOT, BTC-PERP).

3. ``BTC-PERP`` (SYNTHETIC, not market data): a perpetual future on a 24/7 calendar with release
   rule ``settlement``. Prices: one close per UTC calendar day 2015-01-01..2022-12-31
   (``obs_date`` = the UTC day), a GBM from 300.0 with drift 50 %/yr and vol 75 %/yr
   (365 days/yr), rounded to cents; open/high/low/volume NaN.
   Funding: 8-hourly settlements at 00:00, 08:00, 16:00 UTC (exactly 3 a day), ``rate`` as a
   fraction per 8h interval, ``interval_hours`` 8.0, no ``known_at`` (known at ``ts``).
   ``rate = regime mean + AR(1) deviation``: normal regime mean +0.0001 (+0.01 %), a negative
   regime at -0.0003 entered with probability 1/360 per settlement (~every 120 days) and left
   with probability 1/30 (~10 days); deviation ``x_t = 0.9 x_{t-1} + 0.00003 eps``; rounded
   to 1e-8. A funding-carry strategy therefore sees both entries and exits.

4. ``signals`` (SYNTHETIC): ``signal_name = "demo_external_weights"``, an external target-weight
   signal for the ``external`` strategy kind. On the last XNYS session of each month whose
   last session lies inside the equity data span (1990-01 .. 2022-11), long-only weights for
   the 20 equities drawn from a Dirichlet(1, ..., 1) and floored to 1e-6 (each month sums to
   at most 1). They carry no information about returns.

5. ``corporate_actions``: an EMPTY frame with the contract columns. The equity file is already
   adjusted for splits and dividends; applying the real actions on top would double count them.
   The index, WTI and VIX series have no corporate actions.

6. ``universe`` (``DEMO_UNIVERSES``): ``US_EQ20`` (the 20 equities), ``CROSS_ASSET`` (SPX,
   NASDAQ, WTI, UST10_TR, BTC-PERP) and ``ALL`` (every instrument with prices: the 20 equities,
   SPX, NASDAQ, WTI, VIX, UST10_TR, BTC-PERP; macro series are not tradable). ``valid_from`` =
   the instrument's first price date; ``valid_to`` = NaT for all. Spans differ (SPX/NASDAQ end
   2018-12-31, WTI/VIX 2019-01-03, UST10_TR 2017-03-29, equities 2022-12-28): after its last
   price an instrument is marked at its last known price, per the engine's missing-price rule.

7. ``instruments``: every price instrument and every macro series (UST_* with rule ``close``,
   US_* with rule ``quarterly_30d``), currency USD, calendar XNYS except BTC-PERP (``24/7``).

The numbers that drive the modelled and synthetic parts are the module-level constants below,
so they can be read, tested and overridden in one place.

Clocks (DESIGN.md section 1): ``obs_date``/``ts`` is valid time; ``known_at`` is knowledge time
and is only emitted where this module models it (macro); ``recorded_at`` is the warehouse's.
"""


from __future__ import annotations

import functools
from datetime import time
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.ingest import IngestReport, ingest
from macro_pipeline.warehouse.tables import FACT_TABLES

# ---------------------------------------------------------------------------------------------
# Files: read from the installed package via importlib.resources, never from a sibling folder
# ---------------------------------------------------------------------------------------------

DEMO_DATA_FILES: dict[str, str] = {
    "equities": "us_equities_20_adjclose_daily.csv.gz",
    "sp500": "sp500_index_ohlcv_daily.csv.gz",
    "nasdaq": "nasdaq_index_ohlcv_daily.csv.gz",
    "wti": "wti_crude_daily.csv.gz",
    "vix": "vix_daily.csv.gz",
    "treasury": "us_treasury_yields_daily.csv.gz",
    "macro": "us_macro_quarterly.csv.gz",
}


def data_path(name: str) -> Path:
    """Path of a demo file in the ``data/`` folder of the ``macro_pipeline.demo`` package (key or file name)."""
    file_name = DEMO_DATA_FILES.get(name, name)
    return Path(str(resources.files("macro_pipeline.demo").joinpath("data").joinpath(file_name)))


# ---------------------------------------------------------------------------------------------
# Instruments and universes
# ---------------------------------------------------------------------------------------------

EQUITY_TICKERS: tuple[str, ...] = (
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)  # fmt: skip

# file column -> series id; yields are decimals (0.0242 == 2.42 %)
UST_TENORS: dict[str, str] = {
    "1month": "UST_1M",
    "3month": "UST_3M",
    "6month": "UST_6M",
    "1year": "UST_1Y",
    "2year": "UST_2Y",
    "3year": "UST_3Y",
    "5year": "UST_5Y",
    "7year": "UST_7Y",
    "10year": "UST_10Y",
    "20year": "UST_20Y",
    "30year": "UST_30Y",
}

PERP_ID = "BTC-PERP"
# SYNTHETIC spot leg for delta-neutral carry: the same path as the perp (zero basis), so a
# long-spot / short-perp position earns the funding and nothing else but costs
SPOT_ID = "BTC-SPOT"
UST10_TR_ID = "UST10_TR"

DEMO_UNIVERSES: dict[str, tuple[str, ...]] = {
    "US_EQ20": EQUITY_TICKERS,
    "CROSS_ASSET": ("SPX", "NASDAQ", "WTI", UST10_TR_ID, PERP_ID),
    # every instrument that has a price series (macro series are not tradable)
    "CRYPTO": (SPOT_ID, PERP_ID),
    "ALL": (*EQUITY_TICKERS, "SPX", "NASDAQ", "WTI", "VIX", UST10_TR_ID, PERP_ID, SPOT_ID),
}

NY_TZ = "America/New_York"
# Treasury constant-maturity yields: an end-of-day print, known at 16:00 New York that day.
UST_KNOWN_AT_LOCAL_TIME = time(16, 0)

# ---------------------------------------------------------------------------------------------
# Quarterly macro: MODELLED vintages (the file holds final revised values only)
# ---------------------------------------------------------------------------------------------


class Vintage(NamedTuple):
    """One modelled release of a quarterly value.

    ``lag_days``: calendar days after the quarter-end date; released at ``MACRO_RELEASE_LOCAL_TIME``
    New York time on that day (no weekend/holiday roll). ``error_scale``: multiplier on the
    series' first-print error; the last vintage must have 0.0 so it equals the file's value.
    """

    label: str
    lag_days: int
    error_scale: float


MACRO_VINTAGES: tuple[Vintage, ...] = (
    Vintage("first", 30, 1.0),
    Vintage("second", 60, 0.5),
    Vintage("final", 90, 0.0),
)
MACRO_RELEASE_LOCAL_TIME = time(8, 30)  # 08:30 New York, DST-aware (13:30 UTC winter, 12:30 summer)

# series -> (error kind, first-print error sd). "relative": value * (1 + sd * scale * z);
# "absolute" (percentage points): value + sd * scale * z. z ~ N(0, 1), one draw per
# (series, quarter) shared by all vintages, so revisions shrink monotonically toward the final.
MACRO_FIRST_PRINT_ERROR: dict[str, tuple[str, float]] = {
    "realgdp": ("relative", 0.005),
    "realcons": ("relative", 0.005),
    "realinv": ("relative", 0.005),
    "realgovt": ("relative", 0.005),
    "realdpi": ("relative", 0.005),
    "cpi": ("relative", 0.005),
    "m1": ("relative", 0.005),
    "pop": ("relative", 0.005),
    "tbilrate": ("absolute", 0.2),
    "unemp": ("absolute", 0.2),
    "infl": ("absolute", 0.2),
    "realint": ("absolute", 0.2),
}
# Modelled prints of these series never go below the floor (a negative unemployment or
# T-bill rate print would be an artefact of the noise, not a plausible first estimate).
MACRO_FLOORS: dict[str, float] = {"tbilrate": 0.0, "unemp": 0.0}
# Modelled prints are rounded to the file's own precision.
MACRO_DECIMALS: dict[str, int] = {"relative": 3, "absolute": 2}

MACRO_DESCRIPTIONS: dict[str, str] = {
    "realgdp": "real GDP, bn chained 2005 USD, SAAR",
    "realcons": "real personal consumption expenditures, bn chained 2005 USD, SAAR",
    "realinv": "real gross private domestic investment, bn chained 2005 USD, SAAR",
    "realgovt": "real federal consumption and investment, bn chained 2005 USD, SAAR",
    "realdpi": "real disposable personal income, bn chained 2005 USD, SAAR",
    "cpi": "CPI all urban consumers, end of quarter, index",
    "m1": "M1 money stock, end of quarter, bn USD",
    "tbilrate": "3-month T-bill rate, quarterly average, percent",
    "unemp": "unemployment rate, percent",
    "pop": "population, end of quarter, millions",
    "infl": "inflation rate (annualised log change of CPI), percent",
    "realint": "real interest rate (tbilrate - infl), percent",
}

# ---------------------------------------------------------------------------------------------
# Derived and synthetic series
# ---------------------------------------------------------------------------------------------

# UST10_TR: constant-maturity 10y total-return proxy, r_t = y_{t-1}/252 - D * (y_t - y_{t-1}).
UST10_TR_DURATION = 8.0
UST10_TR_CARRY_PERIODS_PER_YEAR = 252
UST10_TR_BASE = 100.0

# BTC-PERP (SYNTHETIC): GBM, one close per UTC calendar day.
PERP_START = pd.Timestamp("2015-01-01")
PERP_END = pd.Timestamp("2022-12-31")
PERP_S0 = 300.0
PERP_DRIFT_ANNUAL = 0.50
PERP_VOL_ANNUAL = 0.75
PERP_DAYS_PER_YEAR = 365

# Funding (SYNTHETIC): settlements at 00/08/16 UTC; rate = regime mean + AR(1) deviation.
FUNDING_INTERVAL_HOURS = 8.0
FUNDING_SETTLEMENT_HOURS: tuple[int, ...] = (0, 8, 16)
FUNDING_MEAN = 0.0001  # +0.01 % per 8h in the normal regime
FUNDING_STRESS_MEAN = -0.0003  # -0.03 % per 8h in the negative regime
FUNDING_P_ENTER_STRESS = 1.0 / (3 * 120)  # per settlement: a stress spell every ~120 days
FUNDING_P_EXIT_STRESS = 1.0 / (3 * 10)  # stress spells last ~10 days
FUNDING_AR_PHI = 0.9  # per settlement
FUNDING_AR_SIGMA = 0.00003
FUNDING_DECIMALS = 8

# External signal (SYNTHETIC): monthly long-only weights for the 20 equities.
EXTERNAL_SIGNAL_NAME = "demo_external_weights"
EXTERNAL_SIGNAL_DIRICHLET_ALPHA = 1.0
EXTERNAL_SIGNAL_DECIMALS = 6  # weights are floored to 1e-6, so each month sums to <= 1

# Independent random streams per synthetic component: changing one never shifts the others.
_STREAM_MACRO_VINTAGES = 1
_STREAM_PERP_PRICE = 2
_STREAM_FUNDING = 3
_STREAM_EXTERNAL_SIGNAL = 4

DATE_DTYPE = "datetime64[ns]"
UTC_DTYPE = "datetime64[ns, UTC]"

FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "instruments": (
        "instrument_id",
        "asset_class",
        "currency",
        "kind",
        "calendar",
        "release_rule",
        "description",
    ),
    "prices": ("instrument_id", "obs_date", "open", "high", "low", "close", "volume"),
    "macro": ("series_id", "obs_date", "value", "known_at"),
    "funding": ("instrument_id", "ts", "rate", "interval_hours"),
    "corporate_actions": ("instrument_id", "ex_date", "action", "value"),
    "universe": ("universe", "instrument_id", "valid_from", "valid_to"),
    "signals": ("signal_name", "instrument_id", "obs_date", "value"),
}

_OHLCV = ("open", "high", "low", "close", "volume")


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


@functools.lru_cache(maxsize=1)
def _xnys_sessions() -> pd.DatetimeIndex:
    cal = xcals.get_calendar("XNYS", start="1986-01-01", end="2023-12-29")
    return pd.DatetimeIndex(cal.sessions).astype(DATE_DTYPE)


def _dates(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values, format=fmt).astype(DATE_DTYPE)


def _local_to_utc(dates: pd.Series | pd.DatetimeIndex, at: time) -> pd.DatetimeIndex:
    """``dates`` (naive, normalized) at local New York wall-clock ``at``, converted to UTC."""
    offset = pd.Timedelta(hours=at.hour, minutes=at.minute)
    local = pd.DatetimeIndex(dates) + offset
    return local.tz_localize(NY_TZ).tz_convert("UTC").astype(UTC_DTYPE)


# ---------------------------------------------------------------------------------------------
# Prices
# ---------------------------------------------------------------------------------------------


def _close_only(instrument_id: str, obs_date: pd.Series, close: pd.Series) -> pd.DataFrame:
    nan = np.full(len(close), np.nan)
    return pd.DataFrame(
        {
            "instrument_id": instrument_id,
            "obs_date": obs_date.to_numpy(),
            "open": nan,
            "high": nan,
            "low": nan,
            "close": close.to_numpy(dtype=float),
            "volume": nan,
        }
    )


def _equity_prices() -> pd.DataFrame:
    raw = pd.read_csv(data_path("equities"))
    tickers = tuple(c for c in raw.columns if c != "Date")
    if tickers != EQUITY_TICKERS:
        raise ValueError(f"equity file columns changed: {tickers}")
    raw["Date"] = _dates(raw["Date"], "%Y-%m-%d")
    parts = []
    for t in EQUITY_TICKERS:
        rows = raw[["Date", t]].dropna()  # each ticker starts at its own first print
        parts.append(_close_only(t, rows["Date"], rows[t]))
    return pd.concat(parts, ignore_index=True)


def _index_ohlcv(key: str, instrument_id: str) -> pd.DataFrame:
    raw = pd.read_csv(data_path(key))
    volume = raw["Volume"].astype(float)
    # A zero volume on a broad index is a missing print, not a day without trading.
    volume = volume.where(volume > 0)
    return pd.DataFrame(
        {
            "instrument_id": instrument_id,
            "obs_date": _dates(raw["Date"], "%m/%d/%Y").to_numpy(),
            "open": raw["Open"].astype(float).to_numpy(),
            "high": raw["High"].astype(float).to_numpy(),
            "low": raw["Low"].astype(float).to_numpy(),
            "close": raw["Close"].astype(float).to_numpy(),  # Close, not Adj Close
            "volume": volume.to_numpy(),
        }
    )


def _fred_close(key: str, column: str, instrument_id: str) -> pd.DataFrame:
    raw = pd.read_csv(data_path(key), na_values=["."])
    raw = raw.dropna(subset=[column])  # gaps stay gaps: no prices are invented
    return _close_only(instrument_id, _dates(raw["Date"], "%m/%d/%Y"), raw[column])


def _on_xnys_sessions(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep rows whose obs_date is an XNYS session, so the "close" release rule is defined."""
    return frame[frame["obs_date"].isin(_xnys_sessions())].reset_index(drop=True)


def _treasury_wide() -> pd.DataFrame:
    raw = pd.read_csv(data_path("treasury"))
    stamp = pd.to_datetime(raw["Time Period"], format="%Y-%m-%d %H:%M:%S%z", utc=True)
    raw["obs_date"] = stamp.dt.tz_convert(None).dt.normalize().astype(DATE_DTYPE)
    return raw.drop(columns="Time Period")


def _ust10_total_return(treasury: pd.DataFrame) -> pd.DataFrame:
    """Modelled 10y total-return index (base 100) on every day the 10y yield is printed.

    r_t = y_{t-1} / 252 + (-D) * (y_t - y_{t-1}), D = ``UST10_TR_DURATION``; level = 100 * prod(1+r).
    Carry is one 1/252 year per printed day regardless of the calendar gap; convexity is ignored.
    """
    ten = treasury[["obs_date", "10year"]].dropna().sort_values("obs_date")
    y = ten["10year"].to_numpy(dtype=float)
    ret = np.zeros(len(y))
    ret[1:] = y[:-1] / UST10_TR_CARRY_PERIODS_PER_YEAR - UST10_TR_DURATION * np.diff(y)
    level = UST10_TR_BASE * np.cumprod(1.0 + ret)
    return _close_only(UST10_TR_ID, ten["obs_date"], pd.Series(level))


def _perp_prices(seed: int) -> pd.DataFrame:
    days = pd.date_range(PERP_START, PERP_END, freq="D").astype(DATE_DTYPE)
    rng = _rng(seed, _STREAM_PERP_PRICE)
    dt = 1.0 / PERP_DAYS_PER_YEAR
    shocks = rng.standard_normal(len(days) - 1)
    log_ret = (PERP_DRIFT_ANNUAL - 0.5 * PERP_VOL_ANNUAL**2) * dt + PERP_VOL_ANNUAL * np.sqrt(
        dt
    ) * shocks
    close = PERP_S0 * np.exp(np.concatenate([[0.0], np.cumsum(log_ret)]))
    closes = pd.Series(np.round(close, 2))
    return pd.concat([_close_only(PERP_ID, pd.Series(days), closes), _close_only(SPOT_ID, pd.Series(days), closes)],
                     ignore_index=True)


def build_prices(seed: int, treasury: pd.DataFrame | None = None) -> pd.DataFrame:
    """All daily price rows (no ``known_at`` column: the ingestion's release rule fills it)."""
    treasury = _treasury_wide() if treasury is None else treasury
    xnys = [
        _equity_prices(),
        _index_ohlcv("sp500", "SPX"),
        _index_ohlcv("nasdaq", "NASDAQ"),
        _fred_close("wti", "DCOILWTICO", "WTI"),
        _fred_close("vix", "vix", "VIX"),
        _ust10_total_return(treasury),
    ]
    frames = [_on_xnys_sessions(f) for f in xnys] + [_perp_prices(seed)]
    prices = pd.concat(frames, ignore_index=True)
    prices = prices.astype({"obs_date": DATE_DTYPE, **dict.fromkeys(_OHLCV, "float64")})
    return prices.sort_values(["instrument_id", "obs_date"], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Macro
# ---------------------------------------------------------------------------------------------


def _treasury_macro(treasury: pd.DataFrame) -> pd.DataFrame:
    known_at = _local_to_utc(treasury["obs_date"], UST_KNOWN_AT_LOCAL_TIME)
    parts = []
    for column, series_id in UST_TENORS.items():
        mask = treasury[column].notna().to_numpy()  # blanks are skipped, not filled
        parts.append(
            pd.DataFrame(
                {
                    "series_id": series_id,
                    "obs_date": treasury["obs_date"].to_numpy()[mask],
                    "value": treasury[column].to_numpy(dtype=float)[mask],
                    "known_at": known_at[mask],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _validate_vintages(vintages: tuple[Vintage, ...]) -> None:
    lags = [v.lag_days for v in vintages]
    if not vintages or lags != sorted(set(lags)) or lags[0] < 0:
        raise ValueError(f"vintage lags must be non-negative and strictly increasing: {lags}")
    if vintages[-1].error_scale != 0.0:
        raise ValueError("the last vintage must have error_scale 0.0 (it is the file's value)")


def quarterly_macro(seed: int, vintages: tuple[Vintage, ...] = MACRO_VINTAGES) -> pd.DataFrame:
    """Quarterly macro rows with MODELLED vintages: one row per (series, quarter, vintage).

    ``obs_date`` is the quarter-end date; vintage k is known at quarter end + ``lag_days`` at
    08:30 New York (converted to UTC with DST). Value = final * (1 + sd * scale * z) for levels,
    final + sd * scale * z for rates; the last vintage is the file's value exactly.
    """
    _validate_vintages(vintages)
    raw = pd.read_csv(data_path("macro"))
    quarter_end = (
        pd.PeriodIndex.from_fields(year=raw["year"], quarter=raw["quarter"], freq="Q-DEC")
        .end_time.normalize()
        .astype(DATE_DTYPE)
    )
    rng = _rng(seed, _STREAM_MACRO_VINTAGES)
    parts = []
    for name, (kind, sd) in MACRO_FIRST_PRINT_ERROR.items():
        final = raw[name].to_numpy(dtype=float)
        z = rng.standard_normal(len(final))  # drawn for every quarter, so streams stay aligned
        keep = np.ones(len(final), dtype=bool)
        if name in ("infl", "realint"):
            # 1959Q1 is a 0 placeholder in the file (no prior CPI to difference), not a value.
            keep[0] = False
        for v in vintages:
            if kind == "relative":
                value = final * (1.0 + sd * v.error_scale * z)
            else:
                value = final + sd * v.error_scale * z
            if name in MACRO_FLOORS:
                value = np.maximum(value, MACRO_FLOORS[name])
            value = np.round(value, MACRO_DECIMALS[kind]) if v.error_scale else final
            obs = pd.DatetimeIndex(quarter_end)
            known_at = _local_to_utc(obs + pd.Timedelta(days=v.lag_days), MACRO_RELEASE_LOCAL_TIME)
            parts.append(
                pd.DataFrame(
                    {
                        "series_id": "US_" + name.upper(),
                        "obs_date": obs[keep],
                        "value": value[keep],
                        "known_at": known_at[keep],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def build_macro(
    seed: int,
    vintages: tuple[Vintage, ...] = MACRO_VINTAGES,
    treasury: pd.DataFrame | None = None,
) -> pd.DataFrame:
    treasury = _treasury_wide() if treasury is None else treasury
    macro = pd.concat(
        [_treasury_macro(treasury), quarterly_macro(seed, vintages)], ignore_index=True
    )
    macro = macro.astype({"obs_date": DATE_DTYPE, "value": "float64", "known_at": UTC_DTYPE})
    return macro.sort_values(["series_id", "obs_date", "known_at"], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Funding, corporate actions, universe, signals, instruments
# ---------------------------------------------------------------------------------------------


def build_funding(seed: int) -> pd.DataFrame:
    """SYNTHETIC 8-hourly funding for BTC-PERP: two-regime mean plus an AR(1) deviation."""
    days = pd.date_range(PERP_START, PERP_END, freq="D", tz="UTC")
    hours = pd.to_timedelta(list(FUNDING_SETTLEMENT_HOURS), unit="h")
    ts = pd.DatetimeIndex(np.repeat(days, len(hours))) + np.tile(hours, len(days))
    n = len(ts)
    rng = _rng(seed, _STREAM_FUNDING)
    switch = rng.random(n)
    eps = rng.standard_normal(n)
    rate = np.empty(n)
    stressed = False
    dev = 0.0
    for i in range(n):
        if stressed:
            stressed = switch[i] >= FUNDING_P_EXIT_STRESS
        else:
            stressed = switch[i] < FUNDING_P_ENTER_STRESS
        dev = FUNDING_AR_PHI * dev + FUNDING_AR_SIGMA * eps[i]
        rate[i] = (FUNDING_STRESS_MEAN if stressed else FUNDING_MEAN) + dev
    return pd.DataFrame(
        {
            "instrument_id": PERP_ID,
            "ts": ts.astype(UTC_DTYPE),
            "rate": np.round(rate, FUNDING_DECIMALS),
            "interval_hours": FUNDING_INTERVAL_HOURS,
        }
    )


def build_corporate_actions() -> pd.DataFrame:
    """Empty on purpose: the equity file is already split- and dividend-adjusted."""
    return pd.DataFrame(
        {
            "instrument_id": pd.Series([], dtype="str"),
            "ex_date": pd.Series([], dtype=DATE_DTYPE),
            "action": pd.Series([], dtype="str"),
            "value": pd.Series([], dtype="float64"),
        }
    )


def build_universe(prices: pd.DataFrame) -> pd.DataFrame:
    """Membership from each instrument's first price date to the day after its last one.

    An instrument whose data ends before the newest date of the whole data set (SPX and NASDAQ
    end in 2018, UST10_TR in 2017) leaves its universes the day after its last price
    (``valid_to`` is exclusive), so a backtest exits it at its last tradable price rather than
    holding a frozen mark. Instruments priced up to the newest date stay open-ended (NaT).
    """
    first = prices.groupby("instrument_id")["obs_date"].min()
    last = prices.groupby("instrument_id")["obs_date"].max()
    newest = prices["obs_date"].max()
    rows = [
        (universe, iid, first[iid], last[iid] + pd.Timedelta(days=1) if last[iid] < newest else pd.NaT)
        for universe, members in DEMO_UNIVERSES.items()
        for iid in members
    ]
    out = pd.DataFrame(rows, columns=["universe", "instrument_id", "valid_from", "valid_to"])
    out["valid_from"] = out["valid_from"].astype(DATE_DTYPE)
    out["valid_to"] = out["valid_to"].astype(DATE_DTYPE)
    return out.sort_values(["universe", "instrument_id"], ignore_index=True)


def external_signal_dates(prices: pd.DataFrame) -> pd.DatetimeIndex:
    """Last XNYS session of every month whose last session is inside the equity data span."""
    eq = prices.loc[prices["instrument_id"].isin(EQUITY_TICKERS), "obs_date"]
    sessions = _xnys_sessions()
    month_ends = sessions.to_series().groupby(sessions.to_period("M")).max()
    inside = (month_ends >= eq.min()) & (month_ends <= eq.max())
    return pd.DatetimeIndex(month_ends[inside].to_numpy()).astype(DATE_DTYPE)


def build_signals(seed: int, prices: pd.DataFrame) -> pd.DataFrame:
    """SYNTHETIC monthly long-only target weights for the 20 equities (Dirichlet, floored 1e-6)."""
    dates = external_signal_dates(prices)
    rng = _rng(seed, _STREAM_EXTERNAL_SIGNAL)
    alpha = np.full(len(EQUITY_TICKERS), EXTERNAL_SIGNAL_DIRICHLET_ALPHA)
    scale = 10.0**EXTERNAL_SIGNAL_DECIMALS
    weights = np.floor(rng.dirichlet(alpha, size=len(dates)) * scale) / scale
    out = pd.DataFrame(
        {
            "signal_name": EXTERNAL_SIGNAL_NAME,
            "instrument_id": np.tile(np.array(EQUITY_TICKERS, dtype=object), len(dates)),
            "obs_date": np.repeat(dates.to_numpy(), len(EQUITY_TICKERS)),
            "value": weights.ravel(),
        }
    )
    out["instrument_id"] = out["instrument_id"].astype("str")
    out["obs_date"] = out["obs_date"].astype(DATE_DTYPE)
    return out.sort_values(["signal_name", "obs_date", "instrument_id"], ignore_index=True)


def build_instruments() -> pd.DataFrame:
    rows: list[tuple[str, str, str, str, str, str]] = []
    for t in EQUITY_TICKERS:
        rows.append((t, "equity", "spot", "XNYS", "close", f"{t} US equity, adjusted close only"))
    rows += [
        ("SPX", "index", "index", "XNYS", "close", "S&P 500 index, OHLCV"),
        ("NASDAQ", "index", "index", "XNYS", "close", "NASDAQ Composite index, OHLCV"),
        (
            "WTI",
            "commodity",
            "spot",
            "XNYS",
            "close",
            "WTI crude oil spot (FRED DCOILWTICO), USD/bbl",
        ),
        ("VIX", "volatility", "index", "XNYS", "close", "CBOE VIX index close"),
        (
            UST10_TR_ID,
            "rates",
            "index",
            "XNYS",
            "close",
            f"DERIVED/MODELLED 10y Treasury total-return proxy from UST_10Y "
            f"(carry y/252, modified duration {UST10_TR_DURATION:g}, base 100)",
        ),
    ]
    for column, series_id in UST_TENORS.items():
        rows.append(
            (series_id, "rates", "macro", "XNYS", "close",
             f"US Treasury constant-maturity yield {column}, decimal")
        )  # fmt: skip
    for name in MACRO_FIRST_PRINT_ERROR:
        rows.append(
            ("US_" + name.upper(), "macro", "macro", "XNYS", "quarterly_30d",
             f"US {MACRO_DESCRIPTIONS[name]}; MODELLED VINTAGES (file holds final values only)")
        )  # fmt: skip
    rows.append(
        # its daily close is known at the end of the UTC day ("close" on 24/7); funding rows
        # are always known at their settlement time, whatever the instrument's rule
        (PERP_ID, "crypto", "perp", "24/7", "close",
         "SYNTHETIC BTC perpetual: GBM daily close and AR(1) 8-hourly funding; not market data")
    )  # fmt: skip
    rows.append(
        (SPOT_ID, "crypto", "spot", "24/7", "close",
         "SYNTHETIC BTC spot: the same GBM path as BTC-PERP (zero basis), the hedge leg of carry")
    )  # fmt: skip
    columns = [c for c in FRAME_COLUMNS["instruments"] if c != "currency"]
    out = pd.DataFrame(rows, columns=columns)
    out["currency"] = "USD"
    return out[list(FRAME_COLUMNS["instruments"])]


def build_demo_frames(
    seed: int, vintages: tuple[Vintage, ...] = MACRO_VINTAGES
) -> dict[str, pd.DataFrame]:
    treasury = _treasury_wide()
    prices = build_prices(seed, treasury)
    frames = {
        "instruments": build_instruments(),
        "prices": prices,
        "macro": build_macro(seed, vintages, treasury),
        "funding": build_funding(seed),
        "corporate_actions": build_corporate_actions(),
        "universe": build_universe(prices),
        "signals": build_signals(seed, prices),
    }
    return {name: frames[name][list(cols)] for name, cols in FRAME_COLUMNS.items()}


def load_demo_frames(
    *, seed: int = 20240101, macro_vintages: tuple[Vintage, ...] = MACRO_VINTAGES
) -> dict[str, pd.DataFrame]:
    """Return the demo frames in the ingestion contract, keyed by frame name.

    Keys and columns are ``FRAME_COLUMNS``. ``seed`` drives only the modelled/synthetic parts
    (macro vintage noise, BTC-PERP prices and funding, the external signal), each from its own
    random stream. Fresh frames are built on every call (callers may mutate them); the output
    for a given seed and schedule is byte-identical across calls.
    """
    return build_demo_frames(seed, macro_vintages)


# ---------------------------------------------------------------------------------------------
# Into the warehouse
# ---------------------------------------------------------------------------------------------

# instruments first (everything references them), then facts
ORDER = (("instruments", "instruments"), *((t.source, t.kind) for t in FACT_TABLES))


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
