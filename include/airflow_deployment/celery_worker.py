"""Celery configuration that warms the worker up once for this provider's tasks.

Under the CeleryExecutor every task is a process forked from the worker's pool process, and each
one used to import the Amazon provider's SageMaker operators, boto3, aiobotocore, pandas and
matplotlib again and parse botocore's service models again: 1-4 s of CPU per task, more than the
task's own work at time scale 0 (see docs/benchmarks.md). Celery imports the modules listed in
``imports`` in the worker's main process before it forks its pool (Airflow's own
``on_celery_import_modules`` does this for numpy and the standard operators), so with this config
every task process inherits them copy-on-write. Select it with Airflow's setting::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=airflow_deployment.celery_worker.CELERY_CONFIG

and use a shared-models session factory (``airflow_deployment.aws_session``) so the parsed
models warmed here are the ones the hooks' sessions read. The DAG file itself is still parsed by
each task (only modules are preloaded); a new version of this package needs a worker restart, as
any installed provider does. Opt-in: a deployment without this setting runs the same tasks,
each importing what it needs itself.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CONFIG_PATH = "airflow_deployment.celery_worker.CELERY_CONFIG"

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "airflow_deployment.worker_warmup"],
}
