"""Schema migrations: ordered, once each, transactional, idempotent; facts append-only."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse import migrate
from macro_pipeline_tests.conftest import table_state

EXPECTED_TABLES = {
    "instruments", "universe_membership", "calendar_sessions", "ingest_batches", "prices",
    "macro_observations", "funding_rates", "corporate_actions", "external_signals", "strategies",
    "signal_snapshots", "signals", "backtest_runs", "daily_equity", "fills", "round_trips", "metrics",
}


def test_migrate_applies_every_file_once_and_again_is_a_noop(databases):
    engine = databases.new(migrated=False)
    files = [f.filename for f in migrate.discover()]
    assert migrate.status(engine).pending == files
    assert migrate.migrate(engine) == files
    assert migrate.migrate(engine) == []
    st = migrate.status(engine)
    assert st.pending == [] and [a for a, _ in st.applied] == files and st.changed == []
    with engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert EXPECTED_TABLES <= tables


def test_files_apply_in_number_order_across_a_gap_and_a_late_lower_number(databases, tmp_path):
    # 008 may reach a branch before 007 does: the gap is fine, and 007 applies when it arrives
    engine = databases.new(migrated=False)
    # the real files up to 009 (010 on alters 007's table, so it cannot come before it)
    real = [f for f in migrate.discover() if f.filename[:3] <= "009"]
    for f in real:
        if f.filename[:3] != "007":
            shutil.copy(f.path, tmp_path / f.filename)
    files = sorted(f.filename for f in real if f.filename[:3] != "007")
    after = f"{int(files[-1][:3]) + 1:03d}_after.sql"  # after the newest real file, whatever it is
    (tmp_path / after).write_text("CREATE TABLE after_gap (x int);\n")
    applied = migrate.migrate(engine, tmp_path)
    assert applied == sorted(applied) and applied[-2:] == [files[-1], after]
    (tmp_path / "007_late.sql").write_text("CREATE TABLE late (x int);\n")
    assert migrate.status(engine, tmp_path).pending == ["007_late.sql"]
    assert migrate.migrate(engine, tmp_path) == ["007_late.sql"]


def test_failed_file_leaves_schema_unchanged_and_names_file_and_statement(databases, tmp_path):
    engine = databases.new(migrated=False)
    for f in migrate.discover():
        shutil.copy(f.path, tmp_path / f.filename)
    (tmp_path / "900_broken.sql").write_text(
        "CREATE TABLE half_done (x int);\nALTER TABLE no_such_table ADD COLUMN y int;\n"
    )
    with pytest.raises(migrate.MigrationError) as err:
        migrate.migrate(engine, tmp_path)
    msg = str(err.value)
    assert "900_broken.sql" in msg and "statement 2" in msg and "no_such_table" in msg
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('half_done')").scalar() is None
    st = migrate.status(engine, tmp_path)
    assert st.pending == ["900_broken.sql"]
    before = table_state(engine)
    with pytest.raises(migrate.MigrationError):
        migrate.migrate(engine, tmp_path)
    assert table_state(engine) == before


def test_status_reports_a_changed_applied_file(databases, tmp_path):
    engine = databases.new(migrated=False)
    for f in migrate.discover():
        shutil.copy(f.path, tmp_path / f.filename)
    migrate.migrate(engine, tmp_path)
    first = sorted(tmp_path.glob("001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after being applied\n")
    assert migrate.status(engine, tmp_path).changed == [first.name]


def test_split_statements_respects_quotes_comments_and_dollar_bodies():
    sql = "SELECT ';'; -- a ; comment\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\nSELECT 'it''s;'"
    assert migrate.split_statements(sql) == [
        "SELECT ';'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
        "SELECT 'it''s;'",
    ]


@pytest.mark.parametrize("statement", [
    "UPDATE prices SET close = 1",
    "DELETE FROM prices",
    "TRUNCATE prices",
    "DELETE FROM macro_observations",
    "UPDATE universe_membership SET valid_to = NULL",
])
def test_facts_are_append_only(engine, statement):
    import pandas as pd

    from macro_pipeline.warehouse.ingest import ingest

    ingest(engine, "instruments", pd.DataFrame({"instrument_id": ["AAA", "GDP"], "asset_class": ["equity", "macro"], "kind": ["spot", "macro"]}))
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "close": [10.0]}))
    ingest(engine, "macro", pd.DataFrame({"series_id": ["GDP"], "obs_date": ["2019-12-31"], "value": [1.0]}))
    ingest(engine, "universe", pd.DataFrame({"universe": ["U"], "instrument_id": ["AAA"], "valid_from": ["2020-01-01"]}))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)


def test_wheel_without_ddl_migrated_nothing_and_said_up_to_date(databases, tmp_path):
    # regression: a wheel built without sql/ printed "schema up to date" and created no table
    engine = databases.new(migrated=False)
    for directory, reason in ((tmp_path / "absent", "does not exist"), (tmp_path, "holds no NNN_name.sql")):
        with pytest.raises(migrate.MigrationError, match=reason):
            migrate.migrate(engine, directory)
        with pytest.raises(migrate.MigrationError, match=reason):
            migrate.status(engine, directory)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('schema_migrations')").scalar() is None


def test_the_packaged_ddl_folder_is_the_repository_sql_folder():
    # the top-level sql/ is where the files live; the package reaches them through macro_pipeline/sql
    from macro_pipeline_tests.conftest import REPO

    assert migrate.sql_dir().resolve() == (REPO / "sql").resolve()
    assert [f.filename for f in migrate.discover()] == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
