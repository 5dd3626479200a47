"""Issue 13 item 9: two warehouses on one server must not share one Dagster storage when
``MACRO_PIPELINE_DAGSTER_STORAGE_URL`` is unset (measured: both used ``macro_pipeline_dagster``,
so each saw the other's runs, strategy partitions and sensor cursors)."""

from __future__ import annotations

import sqlalchemy as sa

from macro_pipeline.defs import instance
from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV, load_settings
from macro_pipeline.warehouse import connection as db


def test_two_warehouses_on_one_server_get_two_dagster_storages(databases, tmp_path):
    a, b = (databases.new(migrated=False).url.render_as_string(hide_password=False) for _ in range(2))
    urls = [instance.storage_url(load_settings({DATABASE_URL_ENV: u, HOME_ENV: str(tmp_path)})) for u in (a, b)]
    try:
        names = [sa.engine.make_url(u).database for u in urls]
        assert names == [f"{sa.engine.make_url(u).database}_dagster" for u in (a, b)]
        assert names[0] != names[1]
        for u in urls:  # created, and reachable
            with db.get_engine(u).connect() as conn:
                assert conn.exec_driver_sql("SELECT current_database()").scalar_one() == sa.engine.make_url(u).database
        # a second call finds the same one
        assert instance.storage_url(load_settings({DATABASE_URL_ENV: a, HOME_ENV: str(tmp_path)})) == urls[0]
    finally:
        for u in urls:
            db.drop_database(a, sa.engine.make_url(u).database)


def test_dagster_database_names_are_plain_distinct_and_short():
    assert instance.dagster_database("macro_pipeline") == "macro_pipeline_dagster"  # embedded: unchanged
    assert instance.dagster_database("research") == "research_dagster"
    odd = [instance.dagster_database(n) for n in ("Research", "research-2", "research 2", "x" * 63)]
    assert len(set(odd)) == 4 and all(db._SAFE_DBNAME.match(n) for n in odd)
