"""Numbers a quant trusts (issue 12) on the real demo data in PostgreSQL: conventions per
calendar checked against empyrical-reloaded, and the leaderboard using them."""

from __future__ import annotations

import json

import dagster as dg
import empyrical
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline import cli
from macro_pipeline.backtest.leaderboard import leaderboard_frame
from macro_pipeline.backtest.months import run_months, stitched_equity
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.engine.metrics import compute_metrics
from macro_pipeline.reports.data import load_run_subject
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.runs import current_sql, list_runs, load_run, standing_sql
from macro_pipeline_tests.conftest import cli_runner, demo_with_strategies


def months(first: str, last: str) -> list[str]:
    return [d.strftime("%Y-%m-01") for d in pd.date_range(first, last, freq="MS")]


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


@pytest.fixture
def run_cli(demo, monkeypatch, capsys, tmp_path):
    return cli_runner(demo, monkeypatch, capsys, tmp_path)


@pytest.fixture(scope="module")
def carry_run(demo):
    return run_backtest(demo, "carry-simple", "2015-01-01", "2022-12-31")


@pytest.fixture(scope="module")
def board(demo):
    for strategy_id, first in (("carry-simple", "2015-01-01"), ("bh-us-eq20", "1990-01-01")):
        assert {m.status for m in run_months(demo, strategy_id, months(first, "2022-12-01"))} == {"stored"}
    return leaderboard_frame(demo)


def test_24_7_run_metrics_equal_empyrical_with_annualization_365(demo, carry_run) -> None:
    rec = load_run(demo, carry_run.run_id)
    r = rec.equity["equity"].pct_change()
    r.iloc[0] = rec.equity["equity"].iloc[0] / 1_000_000.0 - 1  # the first return is from the capital
    assert pd.Timestamp(r.index[0]) == pd.Timestamp("2015-01-01") and len(r) == 2922
    expected = {
        "total_return": empyrical.cum_returns_final(r),
        "cagr": empyrical.cagr(r, annualization=365),
        "annual_volatility": empyrical.annual_volatility(r, annualization=365),
        "sharpe": empyrical.sharpe_ratio(r, annualization=365),
        "sortino": empyrical.sortino_ratio(r, annualization=365),
        "calmar": empyrical.calmar_ratio(r, annualization=365),
        "max_drawdown": empyrical.max_drawdown(r),
    }
    for key, value in expected.items():
        assert rec.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # over 2922 days = 8.005 365-day years, not 2922 / 252 = 11.6 "years"
    assert rec.metrics["cagr"] == pytest.approx((1 + rec.metrics["total_return"]) ** (365 / 2922) - 1, rel=1e-12)
    print(f"\ncarry-simple 2015-2022: {rec.metrics['total_return']:.6f} total, {rec.metrics['cagr']:.6f} CAGR, "
          f"{rec.metrics['annual_volatility']:.6f} vol, {rec.metrics['sharpe']:.4f} Sharpe")


def test_leaderboard_annualises_each_strategy_with_its_calendar(demo, board) -> None:
    """Regression: leaderboard_frame called compute_metrics without a calendar (252 for 24/7)."""
    assert board.loc["carry-simple", "calendar"] == "24/7"
    assert board.loc["bh-us-eq20", "calendar"] == "XNYS"
    for strategy_id, ppy in (("carry-simple", 365), ("bh-us-eq20", 252)):
        r = stitched_equity(demo, strategy_id).pct_change().dropna()
        assert board.loc[strategy_id, "sharpe"] == pytest.approx(
            empyrical.sharpe_ratio(r, annualization=ppy), rel=1e-9)
        assert board.loc[strategy_id, "annual_volatility"] == pytest.approx(
            empyrical.annual_volatility(r, annualization=ppy), rel=1e-9)
    r = stitched_equity(demo, "carry-simple").pct_change().dropna()
    assert board.loc["carry-simple", "cagr"] == pytest.approx(empyrical.cagr(r, annualization=365), rel=1e-9)
    # tails and stress windows ride along (Dagster metadata on the leaderboard)
    from macro_pipeline.engine.metrics import tail_risk

    assert board.loc["carry-simple", "es_99"] == pytest.approx(tail_risk(r)["es_99"], rel=1e-12)
    assert set(board.loc["bh-us-eq20", "stress"]) >= {"2007-09 financial crisis", "2020-02/03 COVID crash"}
    assert set(board.loc["carry-simple", "stress"]) == {"2015-08 yuan devaluation", "2018-Q4 selloff",
                                                         "2020-02/03 COVID crash", "2022 rate shock"}
    assert board.loc["carry-simple", "cagr"] == pytest.approx(
        compute_metrics(r, calendar="24/7")["cagr"], rel=1e-15)


# --------------------------------------------------------------------------- benchmark


def test_carry_benchmark_is_its_spot_leg_and_equity_its_universe(demo, carry_run) -> None:
    from macro_pipeline.backtest.one_off import benchmark_equity
    from macro_pipeline.warehouse.pit import PointInTimeReader

    bench = benchmark_equity(demo, "carry-simple", "2015-01-01", "2022-12-31", system_as_of=carry_run.system_as_of)
    assert bench.label.startswith("BTC-SPOT bought and held") and bench.calendar == "24/7"
    reader = PointInTimeReader(demo, pd.Timestamp("2023-01-02", tz="UTC"), carry_run.system_as_of)
    spot = reader.price_panel(["BTC-SPOT"], "2014-12-01", "2022-12-31")["BTC-SPOT"].dropna()
    got = bench.equity.pct_change().dropna()
    want = spot.pct_change().reindex(got.index)
    assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9, abs=1e-12)  # held, no costs, no drift
    eq = benchmark_equity(demo, "ema-us-eq20", "2014-01-01", "2014-12-31")
    assert "equal-weight buy-and-hold of US_EQ20" in eq.label and "total return" in eq.label


def test_report_states_the_benchmark_and_its_common_window(demo, carry_run) -> None:
    from macro_pipeline.backtest.one_off import benchmark_equity
    from macro_pipeline.engine.metrics import relative_metrics
    from macro_pipeline.reports.render import render_run_report

    page = render_run_report(demo, carry_run.run_id)
    assert "BTC-SPOT bought and held (the spot leg of the carry trade)" in page
    assert "Against the benchmark over the common window (2015-01-03 .. 2022-12-31, 2,920 sessions)" in page
    for label in ("alpha", "beta", "correlation", "tracking error", "information ratio", "up capture", "down capture"):
        assert f"<td>{label}</td>" in page
    spx = render_run_report(demo, carry_run.run_id, "SPX")
    assert "SPX (price index, excludes dividends)" in spx
    r = load_run(demo, carry_run.run_id).equity["equity"].pct_change().dropna()
    b = benchmark_equity(demo, "carry-simple", "2015-01-01", "2022-12-31").equity.pct_change().dropna()
    rel = relative_metrics(r, b, calendar="24/7")
    a, be = empyrical.alpha_beta(*r.align(b, join="inner"), annualization=365)
    assert rel["alpha"] == pytest.approx(a, rel=1e-9) and rel["beta"] == pytest.approx(be, rel=1e-9, abs=1e-12)
    print(f"\ncarry-simple vs BTC-SPOT: {rel}")


# --------------------------------------------------------------------------- data coverage


def test_macro_regime_history_ends_where_its_macro_input_goes_stale(demo) -> None:
    """Regression: macro-regime sat flat in cash 2010-2019 (its macro inputs end in 2009) and those
    years counted in its CAGR and Sharpe. Its history now ends max_staleness_days after the last
    macro print became known, as a history ends where its traded prices end."""
    from macro_pipeline.backtest.configs import load_strategy
    from macro_pipeline.backtest.months import data_limit, input_coverage

    cfg = load_strategy(demo, "macro-regime")
    spans = {s["entity"]: s for s in input_coverage(demo, cfg)}
    with demo.connect() as conn:
        known = conn.execute(sa.text("SELECT max(known_at) FROM macro_observations WHERE series_id = :s"),
                             {"s": cfg.params["growth_series"]}).scalar()
    growth = spans[cfg.params["growth_series"]]
    assert growth["last_known_at"] == known and growth["horizon_days"] == cfg.params["max_staleness_days"]
    assert growth["live_until"] == pd.Timestamp(known).tz_convert(None).normalize() + pd.Timedelta(days=200)
    want = min(s["live_until"] for s in spans.values())  # the earlier of the two macro series
    limit = data_limit(demo, cfg)
    assert limit == want and limit.year <= 2010
    print(f"\nmacro-regime history ends {limit.date()} (growth last known {pd.Timestamp(known).date()})")
    after = (limit + pd.offsets.MonthBegin(1)).strftime("%Y-%m-01")
    assert [m.status for m in run_months(demo, "macro-regime", [after])] == ["after-data"]
    # strategies without such inputs keep ending where their prices end
    assert data_limit(demo, load_strategy(demo, "bh-us-eq20")).year >= 2020


# --------------------------------------------------------------------------- trade statistics


def test_stored_attribution_adds_up_for_a_run_and_a_stitched_history(demo, carry_run, board) -> None:
    from macro_pipeline.reports.data import load_strategy_subject

    s = load_run_subject(demo, carry_run.run_id)
    a = s.attribution
    change = s.equity["equity"].iloc[-1] - s.start_equity
    assert a["total"].sum() == pytest.approx(change, rel=1e-9)
    assert a.loc["BTC-PERP", "funding"] > 0  # the short perp receives funding: where carry earns
    assert a.loc["BTC-PERP", "funding"] == pytest.approx(-s.funding_paid, rel=1e-9)
    assert -a["costs"].sum() == pytest.approx(s.costs_paid, rel=1e-9)
    h = load_strategy_subject(demo, "carry-simple")  # 96 monthly runs, each its own attribution
    assert h.attribution["total"].sum() == pytest.approx(h.equity["equity"].iloc[-1] - h.start_equity, rel=1e-9)
    page = __import__("macro_pipeline.reports.render", fromlist=["x"]).render_subject(demo, h)
    assert "P&amp;L by instrument (money)" in page and "Positions (flat to flat)" in page
    assert "Round trips (exit-trades convention)" in page


def test_position_spells_hand_worked() -> None:
    from macro_pipeline.reports.data import position_spells

    fills = pd.DataFrame({
        "session_date": pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-11", "2021-01-12", "2021-01-20"]),
        "fill_no": [1, 2, 3, 4, 5], "instrument_id": ["A", "A", "A", "B", "A"],
        "quantity": [10.0, -4.0, -6.0, 5.0, 2.0],  # A: open, trim, close; B open; A reopens
        "notional": [1000.0, -440.0, -720.0, 500.0, 240.0], "cost": [1.0, 0.5, 0.5, 0.5, 0.2]})
    spells = position_spells(fills)
    a = spells[spells["instrument"] == "A"].reset_index(drop=True)
    assert list(a["closed"]) == [True, False] and a.loc[0, "days"] == 7
    assert a.loc[0, "pnl"] == pytest.approx(-(1000.0 - 440.0 - 720.0) - (1.0 + 0.5 + 0.5))  # 158
    assert a.loc[1, "days"] == 0  # reopened on the last fill date
    carried = position_spells(fills[fills["instrument_id"] == "A"].iloc[1:3], {"A": 10.0}, pd.Timestamp("2021-01-01"))
    assert list(carried["closed"]) == [True] and carried.loc[0, "days"] == 10


def test_profit_factor_with_near_zero_losses_is_n_a() -> None:
    """Regression: rsi-us-eq20 in one month showed a profit factor of 4,195,183.95."""
    from macro_pipeline.reports.data import trade_statistics

    stats = trade_statistics(pd.DataFrame({"pnl": [100.0, 250.0, -1e-5], "holding_days": [3, 4, 5]}))
    assert stats["profit_factor_degenerate"]
    ok = trade_statistics(pd.DataFrame({"pnl": [100.0, 250.0, -10.0], "holding_days": [3, 4, 5]}))
    assert not ok["profit_factor_degenerate"] and ok["profit_factor"] == pytest.approx(35.0)


# --------------------------------------------------------------------------- stress


def test_strategy_report_has_stress_windows_drawdowns_and_tails(demo, board) -> None:
    from macro_pipeline.engine.metrics import drawdown_periods, stress_table
    from macro_pipeline.reports.data import load_strategy_subject
    from macro_pipeline.reports.render import render_subject

    s = load_strategy_subject(demo, "bh-us-eq20")
    page = render_subject(demo, s)
    assert 'id="stress"' in page and "Five worst drawdowns" in page and "expected shortfall 99% (daily)" in page
    table = stress_table(s.returns, calendar="XNYS")
    assert {"1998 LTCM / Russia", "2007-09 financial crisis", "2020-02/03 COVID crash", "2022 rate shock"} <= set(
        table["window"])
    gfc = table.set_index("window").loc["2007-09 financial crisis"]
    eq = s.equity["equity"]
    before = eq.loc[:"2007-10-08"].iloc[-1]
    assert gfc["total_return"] == pytest.approx(eq.loc[:"2009-03-09"].iloc[-1] / before - 1, rel=1e-9)
    assert "2007-09 financial crisis" in page
    worst = drawdown_periods(s.returns, 5)
    assert worst.loc[0, "depth"] == pytest.approx(s.metrics["max_drawdown"], rel=1e-12)
    print("\nbh-us-eq20 stress table:\n" + table.to_string())


# --------------------------------------------------------------------------- current / superseded


def test_runs_list_shows_current_runs_as_current_when_one_is_superseded(demo, run_cli) -> None:
    """Regression: under pandas 3 a missing ``superseded_by`` came back as NaN (truthy) and
    `runs list` showed every run superseded once one was. Standing is now computed once, in SQL
    (`standing_sql`), and every surface shows it: CLI table and JSON, `runs show`, the report."""
    old = run_backtest(demo, "ema-us-eq20", "2017-01-01", "2017-06-30")
    new = run_backtest(demo, "ema-us-eq20", "2017-01-01", "2017-06-30")
    assert new.superseded == old.run_id
    revised = pd.DataFrame({"instrument_id": ["AAPL"], "obs_date": ["2017-03-01"], "close": [1.0],
                            "known_at": ["2017-03-02T15:00:00Z"]})
    assert ingest(demo, "prices", revised).revisions_added == 1
    repro = run_backtest(demo, "ema-us-eq20", "2017-01-01", "2017-06-30", system_as_of=new.system_as_of)
    assert repro.reproduction
    expected = {old.run_id: "superseded", new.run_id: "current", repro.run_id: "reproduction"}

    frame = list_runs(demo)
    assert frame["superseded_by"].isna().sum() >= len(frame) - 1  # the NaN case: almost all missing
    standing = dict(zip(frame["run_id"], frame["standing"], strict=True))
    assert {k: standing[k] for k in expected} == expected
    assert set(list_runs(demo, current_only=True)["run_id"]) == {k for k, v in standing.items() if v == "current"}
    assert sum(v == "current" for v in standing.values()) == len(frame) - 2  # only old and repro are not

    code, out, _ = run_cli("runs", "list", "--all")
    assert code == 0
    shown = {line.split()[0]: line.split()[-1] for line in out.splitlines()[2:]}
    assert shown[old.run_id] == "superseded" and shown[new.run_id] == "current"
    assert sum(v == "current" for v in shown.values()) == len(frame) - 2
    code, out, _ = run_cli("runs", "list", "--all", "--json")
    assert {r["run_id"]: r["standing"] for r in json.loads(out)} == standing
    for run_id, want in expected.items():
        code, out, _ = run_cli("runs", "show", run_id[:10], "--json")
        assert code == 0 and json.loads(out)["standing"] == want
        assert load_run_subject(demo, run_id).lineage["standing"].startswith(want)


def test_standing_and_current_sql_agree_on_every_row(demo) -> None:
    with demo.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {standing_sql('r')} = 'current', {current_sql('r')} "
                                    "FROM backtest_runs r")).all()
    assert rows and all(a == b for a, b in rows)


# --------------------------------------------------------------------------- CLI


def test_every_subcommand_is_in_its_group_help(capsys) -> None:
    parser = cli.build_parser()
    groups = [a for a in parser._subparsers._group_actions[0].choices.items()]  # noqa: SLF001
    for name, group in groups:
        subs = [a for a in group._actions if isinstance(a, type(parser._subparsers._group_actions[0]))]  # noqa: SLF001
        if not subs:
            continue
        text = group.format_help()
        for action in subs[0]._choices_actions:  # noqa: SLF001
            assert action.help, f"{name} {action.dest} has no help line"
        for sub in subs[0].choices:
            assert f"    {sub} " in text or f"    {sub}\n" in text, f"`{name} --help` omits {sub}"


def test_runs_list_is_limited_by_default_and_show_takes_a_prefix(demo, run_cli) -> None:
    total = len(list_runs(demo))
    code, out, _ = run_cli("runs", "list", "--limit", "3")
    body = [line for line in out.splitlines()[2:] if not line.startswith("(")]
    assert code == 0 and len(body) == 3
    assert f"the newest 3 of {total:,} runs" in out
    newest = list_runs(demo, limit=3)
    assert list(newest["run_id"]) == list(list_runs(demo)["run_id"])[-3:]
    code, out, _ = run_cli("runs", "list")
    assert len([line for line in out.splitlines()[2:] if not line.startswith("(")]) == min(50, total)
    code, out, _ = run_cli("runs", "show", newest["run_id"].iloc[-1][:8])
    assert code == 0 and newest["run_id"].iloc[-1] in out


def test_strategies_describe_lists_types_bounds_and_defaults(run_cli) -> None:
    code, out, _ = run_cli("strategies", "describe", "funding_carry")
    assert code == 0
    assert "funding_carry: universe CROSS_ASSET, rebalance daily, calendar 24/7" in out
    line = next(x for x in out.splitlines() if x.startswith("lookback "))
    assert line.split()[:3] == ["lookback", "int", "1"] and "1 <= lookback <= 365" in line
    code, out, _ = run_cli("strategies", "describe", "--json")
    assert {"buy_and_hold", "funding_carry", "macro_regime"} <= set(json.loads(out))
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["strategies"]  # noqa: SLF001
    add = help_text._subparsers._group_actions[0].choices["add"].format_help()  # noqa: SLF001
    assert "funding_carry:" in add and "entry_threshold" in add


# --------------------------------------------------------------------------- comparison


def test_comparison_collapses_repeated_notes_and_has_a_colour_per_strategy() -> None:
    """Regression: nine identical "no clean counterpart" notes; two strategies sharing a colour."""
    import re

    from macro_pipeline.reports import charts
    from macro_pipeline.reports.render import collapse_notes

    notes = [(f"s{i}", "a pipeline history has no clean counterpart") for i in range(9)] + [("s1", "other")]
    assert collapse_notes(notes) == [", ".join(f"s{i}" for i in range(9)) + ": a pipeline history has no clean "
                                     "counterpart", "s1: other"]
    assert len(set(charts.PALETTE)) == len(charts.PALETTE) >= 12
    idx = pd.date_range("2020-01-01", periods=30, freq="D")
    curves = {f"strategy {i}": pd.Series(1 + 0.01 * i + 0.001 * pd.RangeIndex(30).to_numpy(), index=idx)
              for i in range(12)}
    svg = charts.overlay(curves, {k: pd.Series(0.0, index=idx) for k in curves}, log=False)
    strokes = set(re.findall(r"stroke: ?(#[0-9a-fA-F]{6})", svg))
    assert {c.lower() for c in charts.PALETTE[:12]} <= {c.lower() for c in strokes}


# --------------------------------------------------------------------------- Dagster metadata


def test_every_asset_has_owners_kinds_tags_and_a_code_version() -> None:
    from macro_pipeline.defs import defs
    from macro_pipeline.engine.version import ENGINE_VERSION

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:macro-pipeline"] and {"python", "postgres"} <= set(node.kinds), key
        assert node.tags["layer"] in ("ingest", "backtest", "research") and node.code_version, key
    assert graph.get(dg.AssetKey("backtest")).code_version.startswith(f"engine-{ENGINE_VERSION}+")


def test_a_new_engine_version_shows_the_assets_derived_from_backtests_stale(engine, databases, monkeypatch) -> None:
    """The code version is what the UI compares: materialized under engine X, the ``leaderboard``
    is fresh under X and stale ("has a new code version") once the engine version moves on."""
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from macro_pipeline.defs import definitions
    from macro_pipeline.defs.backtest.assets import leaderboard
    from macro_pipeline.defs.resources import WarehouseResource
    from macro_pipeline_tests.conftest import postgres_instance

    def spec_as_defined():
        return dg.map_asset_specs(definitions._with_ownership, [leaderboard])[0]

    before = spec_as_defined()
    url = engine.url.render_as_string(hide_password=False)
    with postgres_instance(databases) as instance:
        assert dg.materialize([before], instance=instance, resources={"warehouse": WarehouseResource(url=url)}).success
        assert get_stale_status_resolver(instance, [before]).get_status(before.key) == StaleStatus.FRESH
        monkeypatch.setattr(definitions, "ENGINE_VERSION", "99.0.0")
        after = spec_as_defined()
        assert after.code_versions_by_key[after.key] == f"engine-99.0.0+{definitions.CODE_VERSION}"
        resolver = get_stale_status_resolver(instance, [after])
        assert resolver.get_status(after.key) == StaleStatus.STALE
        assert [c.reason for c in resolver.get_stale_causes(after.key)] == ["has a new code version"]


def test_ingest_assets_report_row_count_and_column_schema(engine) -> None:
    from macro_pipeline.defs.ingest.assets import instruments, macro_observations
    from macro_pipeline.defs.resources import WarehouseResource

    url = engine.url.render_as_string(hide_password=False)
    # an explicit instance: a suite-wide current one may belong to an instance another test closed
    with dg.instance_for_test() as instance:
        result = dg.materialize([instruments, macro_observations], resources={"warehouse": WarehouseResource(url=url)},
                                instance=instance)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM macro_observations")).scalar()
    assert n > 0 and meta["macro_observations"]["dagster/row_count"].value == n
    cols = [c.name for c in meta["macro_observations"]["dagster/column_schema"].value.columns]
    assert cols == ["series_id", "obs_date", "value", "known_at", "recorded_at", "batch_id"]
    assert meta["instruments"]["dagster/row_count"].value > 0
