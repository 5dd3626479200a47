"""How a run's steps execute, chosen by one setting, ``MACRO_PIPELINE_EXECUTOR`` (``settings``):

- ``in_process`` (default): every step in the run's own process. On one machine this is the
  cheapest: no broker round trip, no process per step.
- ``celery``: Dagster's Celery executor (dagster-celery). The run's process submits each step as a
  task to the broker (``MACRO_PIPELINE_CELERY_BROKER``, RabbitMQ by default) and collects results
  from ``MACRO_PIPELINE_CELERY_BACKEND`` (Redis by default); ``macro-pipeline worker`` processes,
  on this machine or others, execute them. The ``backtest`` asset fans out one branch per
  strategy, so a backfill of many strategies spreads over the workers.

Celery settings both sides must share (the executor's app and the workers' app are built by
``celery_app_args`` from the same settings, never from a file):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged when it finishes,
  not when it is received, so a step whose worker dies (SIGKILL, out of memory, a lost machine) is
  redelivered by the broker to another worker. Every step here may run twice: stores are one
  transaction each and check the chain they continue under the strategy's lock.
- ``worker_prefetch_multiplier`` 1: a worker holds one task beyond those it runs, so a long step
  never queues others behind it while another worker is idle.
- ``broker_connection_retry_on_startup`` and ``broker_connection_max_retries`` None: a worker
  whose broker restarts reconnects instead of exiting.

Outputs between steps go through Dagster's default IO manager (pickles under the instance's
storage directory): one machine, or a shared filesystem. On several machines without one, give
the code location an object-store IO manager (e.g. dagster-aws ``S3PickleIOManager``).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from macro_pipeline.settings import Settings, load_settings

CELERY_CONFIG_SOURCE: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "broker_connection_max_retries": None,
    "result_expires": 86400,  # seconds; a run's results are collected long before
    # dagster-celery's defaults, kept (config_source replaces, not merges, top-level keys)
    "task_default_priority": 5,
    "task_default_queue": "dagster",
    "broker_transport_options": {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
}


def celery_app_args(settings: Settings | None = None) -> dict[str, Any]:
    """The Celery app arguments of both the executor and ``macro-pipeline worker``."""
    from dagster_celery.executor import CeleryExecutor

    settings = settings or load_settings()
    return CeleryExecutor.for_cli(broker=settings.celery_broker, backend=settings.celery_backend,
                                  config_source=CELERY_CONFIG_SOURCE).app_args()


def executor_def(settings: Settings | None = None) -> dg.ExecutorDefinition:
    settings = settings or load_settings()
    if settings.executor == "in_process":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    from macro_pipeline.settings import CELERY_BACKEND_ENV, CELERY_BROKER_ENV

    # the broker and backend by environment variable where one is set (a URL with a password never
    # lands in the run's stored configuration), else the default URLs (no credentials in them)
    def source(env: str, value: str):
        import os

        return {"env": env} if os.environ.get(env) else value

    return celery_executor.configured({"broker": source(CELERY_BROKER_ENV, settings.celery_broker),
                                       "backend": source(CELERY_BACKEND_ENV, settings.celery_backend),
                                       "config_source": CELERY_CONFIG_SOURCE}, name="celery")
