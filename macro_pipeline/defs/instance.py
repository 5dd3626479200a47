"""Dagster's instance for this project: ``DAGSTER_HOME`` with the packaged ``dagster.yaml``, and
its storage in PostgreSQL on the warehouse's server (the embedded one by default).

- ``DAGSTER_HOME``: ``$MACRO_PIPELINE_HOME/dagster`` unless ``DAGSTER_HOME`` is already set.
- storage: ``MACRO_PIPELINE_DAGSTER_STORAGE_URL`` if set, else the database
  ``<warehouse database>_dagster`` on the warehouse's server (created on first use;
  ``macro_pipeline_dagster`` for the embedded server), so two warehouses on one server never share
  one Dagster storage.

``prepare()`` makes both exist and returns the environment every Dagster process of the project
needs (the webserver, the daemon, their run workers, an in-process demo run).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from macro_pipeline.settings import (
    DAGSTER_DATABASE,
    DAGSTER_STORAGE_ENV,
    DATABASE_URL_ENV,
    EMBEDDED_DATABASE,
    HOME_ENV,
    Settings,
    database_url,
    load_settings,
)

PACKAGED_INSTANCE_YAML = Path(__file__).parent.parent / "dagster.yaml"  # macro_pipeline/dagster.yaml
EVENT_BATCH_SIZE = "500"


def dagster_database(warehouse_database: str) -> str:
    """The storage database of a warehouse database: ``<warehouse>_dagster`` (the embedded
    ``macro_pipeline`` keeps ``macro_pipeline_dagster``). Two warehouses on one server used to
    share one storage, so each saw the other's runs, partitions and sensor cursors. A name that
    is not plain ``[a-z0-9_]`` or too long for PostgreSQL (63 bytes) is made so, with a hash of
    the original to keep distinct warehouses apart."""
    if warehouse_database == EMBEDDED_DATABASE:
        return DAGSTER_DATABASE
    plain = re.sub(r"[^a-z0-9_]", "_", warehouse_database.lower())
    if plain != warehouse_database or len(plain) > 55 or not re.match(r"[a-z_]", plain):
        digest = hashlib.sha256(warehouse_database.encode()).hexdigest()[:8]
        plain = f"w_{plain[:44]}_{digest}"
    return f"{plain}_dagster"


def storage_url(settings: Settings | None = None) -> str:
    """Dagster's storage URL (its database created if missing): ``MACRO_PIPELINE_DAGSTER_STORAGE_URL``,
    else ``dagster_database(<the warehouse's database>)`` on the warehouse's server."""
    from macro_pipeline.warehouse import connection as db

    settings = settings or load_settings()
    if settings.dagster_storage_url:
        return settings.dagster_storage_url
    warehouse = database_url(settings)
    name = dagster_database(make_url(warehouse).database or "postgres")
    if not db.database_exists(warehouse, name):
        try:
            db.create_database(warehouse, name)
        except sa.exc.ProgrammingError as exc:  # created by a concurrent command in between
            if "already exists" not in str(exc):
                raise
    return db.with_database(warehouse, name)


def dagster_home(settings: Settings | None = None) -> Path:
    settings = settings or load_settings()
    return Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()


def prepare(settings: Settings | None = None) -> dict[str, str]:
    """Create ``DAGSTER_HOME`` (with the packaged ``dagster.yaml``) and the storage database;
    return the environment variables Dagster processes need, and set them in this process."""
    settings = settings or load_settings()
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != PACKAGED_INSTANCE_YAML.read_bytes():
        shutil.copyfile(PACKAGED_INSTANCE_YAML, target)
    env = {"DAGSTER_HOME": str(home), DAGSTER_STORAGE_ENV: storage_url(settings), HOME_ENV: str(settings.home),
           # write a run's per-partition events in batches (a full-history run records thousands)
           "DAGSTER_EVENT_BATCH_SIZE": os.environ.get("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE),
           # one "materialization planned" event per asset and run (with the run's partition subset)
           # instead of one per partition: dagster-postgres stores planned events one by one, about
           # 70 ms each under load (84 s of a 153 s full-history run of 396 months x 3 assets). Cost:
           # a failed run does not mark its partitions failed in the UI (they stay missing; the run
           # shows failed). Dagster's own switch (dagster/_core/storage/event_log/base.py).
           "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": os.environ.get(
               "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")}
    if settings.database_url:
        env[DATABASE_URL_ENV] = settings.database_url
    os.environ.update(env)
    return env


def instance(settings: Settings | None = None):
    """The project's persistent ``DagsterInstance`` (what ``macro-pipeline dev`` shows)."""
    import dagster as dg

    prepare(settings)
    return dg.DagsterInstance.get()


def run_job(job_name: str, tags: dict[str, str] | None = None, instance=None, *,
            raise_on_error: bool = False) -> tuple[str, bool]:
    """Run a job of the code location with the configured executor (``defs/executors.py``); returns
    (Dagster run id, success). In-process: ``execute_in_process`` in this process. Celery: this
    process orchestrates (as a run worker launched by the daemon would) and the steps run on
    ``macro-pipeline worker`` processes; the job is loaded by module, so the workers load the same
    definitions. ``raise_on_error``: a failing step's exception is raised instead of returning
    success False."""
    import dagster as dg

    from macro_pipeline.settings import load_settings

    instance = instance or dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if load_settings().executor == "in_process":
        from macro_pipeline.defs import defs

        result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags or {},
                                                                   run_config=quiet, raise_on_error=raise_on_error)
        return result.run_id, result.success
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    job = ReconstructableRepository.for_module("macro_pipeline.defs", "defs").get_reconstructable_job(job_name)
    with dg.execute_job(job, instance, run_config=quiet, tags=tags or {}, raise_on_error=raise_on_error) as result:
        return result.run_id, result.success
