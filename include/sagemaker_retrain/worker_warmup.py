"""What a Celery worker imports and parses once, before forking, for this provider's tasks.

Imported by the worker's main process through ``celery_worker.CELERY_CONFIG``; never by a DAG
file or a task (it would only cost them). Below: the modules the DAG file and the task bodies
import (the DAG file is parsed again by every task), then the botocore models their clients parse.
"""

from __future__ import annotations

import aiobotocore.session  # noqa: F401 - the deferrable operators' triggers
import airflow.providers.amazon.aws.operators.sagemaker  # noqa: F401
import airflow.providers.amazon.aws.triggers.sagemaker  # noqa: F401
import boto3
import matplotlib.backends.backend_agg  # noqa: F401 - the gate's plot
import matplotlib.figure  # noqa: F401

import sagemaker_retrain.data_events  # noqa: F401
import sagemaker_retrain.data_prep.prepare  # noqa: F401 - pandas and numpy
import sagemaker_retrain.evaluation  # noqa: F401 - matplotlib (the plot)
import sagemaker_retrain.operators.approval  # noqa: F401
import sagemaker_retrain.operators.endpoint  # noqa: F401
import sagemaker_retrain.operators.restore  # noqa: F401
import sagemaker_retrain.operators.training  # noqa: F401
import sagemaker_retrain.params  # noqa: F401
import sagemaker_retrain.pipeline  # noqa: F401
import sagemaker_retrain.scoring  # noqa: F401
import sagemaker_retrain.sensors.endpoint  # noqa: F401
from sagemaker_retrain.aws_session import share_parsed_files

# The services the tasks call: building a client parses its model, endpoints and retry rules into
# the process-wide cache (no request is made; the credentials are placeholders never sent).
SERVICES = ("s3", "sagemaker", "sagemaker-runtime", "logs", "cloudwatch", "sts")


def warm_botocore_models() -> None:
    session = share_parsed_files(boto3.session.Session(
        aws_access_key_id="warmup", aws_secret_access_key="warmup", region_name="us-east-1"))
    for service in SERVICES:
        session.client(service)


warm_botocore_models()
