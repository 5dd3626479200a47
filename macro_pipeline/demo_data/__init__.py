"""Demo data: real public market and macro files, plus clearly labelled modelled/synthetic parts.

``load_demo_frames(seed=20240101)`` returns long frames in the ingestion contract (keys
``instruments``, ``prices``, ``macro``, ``funding``, ``corporate_actions``, ``universe``,
``signals``). It is pure pandas (no database), reads only the files inside this package
(see ``SOURCES.md`` for their origin and licences) and is deterministic: the same seed gives
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
"""

from __future__ import annotations

import pandas as pd

from macro_pipeline.demo_data.frames import (
    DEMO_DATA_FILES,
    DEMO_UNIVERSES,
    EQUITY_TICKERS,
    EXTERNAL_SIGNAL_NAME,
    FRAME_COLUMNS,
    MACRO_FIRST_PRINT_ERROR,
    MACRO_RELEASE_LOCAL_TIME,
    MACRO_VINTAGES,
    PERP_ID,
    UST10_TR_DURATION,
    UST10_TR_ID,
    UST_KNOWN_AT_LOCAL_TIME,
    UST_TENORS,
    Vintage,
    build_demo_frames,
    data_path,
)

__all__ = [
    "DEMO_DATA_FILES",
    "DEMO_UNIVERSES",
    "EQUITY_TICKERS",
    "EXTERNAL_SIGNAL_NAME",
    "FRAME_COLUMNS",
    "MACRO_FIRST_PRINT_ERROR",
    "MACRO_RELEASE_LOCAL_TIME",
    "MACRO_VINTAGES",
    "PERP_ID",
    "UST10_TR_DURATION",
    "UST10_TR_ID",
    "UST_KNOWN_AT_LOCAL_TIME",
    "UST_TENORS",
    "Vintage",
    "data_path",
    "load_demo_frames",
]


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
