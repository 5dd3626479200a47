"""The Celery app ``macro-pipeline worker`` runs (``dagster-celery worker start -A`` this module):
dagster-celery's own tasks, on an app built from this project's settings (``executors``), so the
workers and the executor always agree on broker, backend and acknowledgement rules."""

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from macro_pipeline.defs.executors import celery_app_args

app = make_app(celery_app_args())
execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
