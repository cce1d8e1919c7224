"""What a Celery worker imports and parses once, before forking, for this provider's tasks.

Imported by the worker's main process through ``celery_worker.CELERY_CONFIG`` (opt-in: the
deployment selects it with ``[celery] celery_config_options``); never by a DAG file, a task or
the provider package (it would only cost them, and it changes process-wide state: the hooks'
caller lookup and the garbage collector). Below: the modules the DAG file and the task bodies
import (the DAG file is parsed again by every task), then the botocore models their clients parse,
then the collector is told to leave all of it alone (``freeze_for_fork``).
"""

from __future__ import annotations

import gc

import aiobotocore.session  # noqa: F401 - the deferrable operators' triggers
import airflow.dag_processing.dagbag  # noqa: F401 - the task runner's parse imports it in every task (100+ ms)
import airflow.providers.amazon.aws.operators.sagemaker  # noqa: F401
import airflow.providers.amazon.aws.triggers.sagemaker  # noqa: F401
import airflow.providers.standard.operators.empty  # noqa: F401 - a mapped task (score) checks for it
import matplotlib.backends.backend_agg  # noqa: F401 - the gate's plot
import matplotlib.figure  # noqa: F401
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import (  # noqa: F401 - what the DAG file imports: airflow.sdk loads these lazily (task: 25 ms)
    DAG,
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Metadata,
    XComArg,
    task,
)

import sagemaker_retrain.alerts  # noqa: F401
import sagemaker_retrain.catalog  # noqa: F401
import sagemaker_retrain.data_events  # noqa: F401
import sagemaker_retrain.data_prep.prepare  # noqa: F401 - pandas and numpy
import sagemaker_retrain.evaluation  # noqa: F401 - matplotlib (the plot)
import sagemaker_retrain.history_view
import sagemaker_retrain.operators.approval  # noqa: F401
import sagemaker_retrain.operators.champion  # noqa: F401
import sagemaker_retrain.operators.endpoint  # noqa: F401
import sagemaker_retrain.operators.restore  # noqa: F401
import sagemaker_retrain.operators.short_waits  # noqa: F401
import sagemaker_retrain.operators.training  # noqa: F401
import sagemaker_retrain.params  # noqa: F401
import sagemaker_retrain.pipeline  # noqa: F401
import sagemaker_retrain.scoring  # noqa: F401
import sagemaker_retrain.sensors.endpoint  # noqa: F401
from airflow_deployment import hook_caller
from airflow_deployment.aws_session import shared_session

# The services the tasks call: building a client parses its model, endpoints and retry rules into
# the process-wide cache (no request is made; the credentials are placeholders never sent).
SERVICES = ("s3", "sagemaker", "sagemaker-runtime", "logs", "cloudwatch", "sts")


def warm_botocore_models() -> None:
    session = shared_session(aws_access_key_id="warmup", aws_secret_access_key="warmup", region_name="us-east-1")
    for service in SERVICES:
        session.client(service)


def warm_lazy_definitions() -> None:
    """What the DAG file's first uses of ``airflow.sdk`` load lazily, once per process: the providers' asset
    URI normalizers (the first Asset made asks for them, about 18 ms), ``task.branch``'s module, and the
    message-queue providers a model's new-data watcher looks up (when a queue is set)."""
    Asset(name="worker-warmup", uri="s3://worker-warmup/asset")
    _ = task.branch
    MessageQueueTrigger(scheme="sqs", sqs_queue="https://sqs.us-east-1.amazonaws.com/123456789012/worker-warmup")


warm_botocore_models()
warm_lazy_definitions()
hook_caller.install()

# Every task process loads the plugins folder (Airflow's task runner does, for listeners), so the
# model history plugin builds its FastAPI app in each one; the first build imports what FastAPI
# loads lazily (pydantic.v1 among it), so do it once here.
sagemaker_retrain.history_view.create_app()


def freeze_for_fork() -> None:
    """Move everything loaded so far out of the garbage collector's sight, as Python's docs advise before fork.

    The warmup leaves about a million long-lived objects (modules, parsed models). Every task process
    forked from the pool would otherwise walk all of them in each full collection (0.3-0.5 s of CPU
    each, several per task) and, by touching them, copy their pages. Airflow's own
    ``on_celery_import_modules`` freezes what it preloads the same way, but it runs before Celery
    imports this module; its ``worker_ready`` handler unfreezes only the main process, after the pool
    has forked. Garbage is collected first so that none of it is kept for ever.
    """
    gc.collect()
    gc.freeze()


freeze_for_fork()
