"""Real PostgreSQL for every test, never a mock.

The server: ``MACRO_PIPELINE_DATABASE_URL`` when set (CI: the machine's local server), otherwise
an embedded server started for this session in a temporary directory. Each session creates its
own databases (``mpt_<random>``) and drops them at the end; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from macro_pipeline.settings import DATABASE_URL_ENV, normalize_url
from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse import migrate


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        yield normalize_url(url)
        return
    from macro_pipeline.warehouse import connection as embedded

    home = tmp_path_factory.mktemp("embedded_home")
    server = embedded.ensure_embedded(home)
    yield server.url("postgres")
    embedded.stop_embedded(home)


class Databases:
    """Creates databases for tests and drops exactly those.

    Migrated databases are copied from one migrated template made per session (CREATE DATABASE
    ... TEMPLATE is much faster than replaying the DDL for every test).
    """

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.created: list[str] = []
        self._template: str | None = None

    def _name(self) -> str:
        name = f"mpt_{uuid.uuid4().hex[:12]}"
        self.created.append(name)
        return name

    def new(self, migrated: bool = True) -> sa.Engine:
        if migrated and self._template is None:
            self._template = self._name()
            migrate.migrate(db.get_engine(db.create_database(self.server_url, self._template)))
        template = self._template if migrated else None
        return db.get_engine(db.create_database(self.server_url, self._name(), template=template))

    def drop_all(self) -> None:
        for name in self.created:
            db.drop_database(self.server_url, name)


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[Databases]:
    dbs = Databases(server_url)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def engine(databases: Databases) -> Iterator[sa.Engine]:
    """A fresh, migrated, empty warehouse database for one test (its pooled connections are
    closed after the test: a session makes hundreds of databases, the server allows 100
    connections)."""
    engine = databases.new()
    yield engine
    db.dispose_engines(engine.url.database)


@pytest.fixture(scope="session")
def demo_engine(databases: Databases) -> sa.Engine:
    """A warehouse holding the whole demo data set; tests must not write to it."""
    from macro_pipeline.demo.load import load_demo

    engine = databases.new()
    load_demo(engine)
    return engine


def table_state(engine: sa.Engine) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every warehouse table."""
    with engine.connect() as conn:
        tables = [r[0] for r in conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").all()]
        out = {}
        for t in tables:
            n, h = conn.exec_driver_sql(
                f"SELECT count(*), coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '') FROM {t} x"
            ).one()
            out[t] = (n, h)
    return out


REPO = Path(__file__).resolve().parents[1]


def demo_with_strategies(databases: Databases) -> sa.Engine:
    """A new demo warehouse with the repository's strategies registered, for a module that writes
    (runs, revisions): each such module gets its own, so modules never see each other's runs."""
    from macro_pipeline.demo.load import load_demo
    from macro_pipeline.strategies.config import load_builtin_configs
    from macro_pipeline.warehouse.strategies import register_strategy

    engine = databases.new()
    load_demo(engine)
    for cfg in load_builtin_configs():
        register_strategy(engine, cfg)
    return engine


@contextlib.contextmanager
def postgres_instance(databases: Databases) -> Iterator:
    """A Dagster instance whose run, event and schedule storage live in a new PostgreSQL database
    of the test server (dagster-postgres), dropped with the session's other databases."""
    import dagster as dg

    url = databases.new(migrated=False).url.render_as_string(hide_password=False)
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        yield instance


@pytest.fixture
def dagster_instance(databases: Databases) -> Iterator:
    with postgres_instance(databases) as instance:
        yield instance


def pytest_configure(config) -> None:
    """Keep every test's files (reports, Dagster homes, embedded servers) out of the user's
    ``./.macro_pipeline``: the session's default home is a temporary directory."""
    import tempfile

    from macro_pipeline.settings import HOME_ENV

    os.environ[HOME_ENV] = tempfile.mkdtemp(prefix="mpt_home_")


def cli_runner(engine: sa.Engine, monkeypatch, capsys, tmp_path: Path):
    """``run(*args) -> (exit code, stdout, stderr)`` of ``macro-pipeline`` in this process,
    against ``engine``'s database, with a home of its own under ``tmp_path``."""
    from macro_pipeline import cli
    from macro_pipeline.settings import HOME_ENV

    monkeypatch.setenv(DATABASE_URL_ENV, engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
