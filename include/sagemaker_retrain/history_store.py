"""Where one model's history lives, read by the model history page: its bucket, prefix and history path.

From the model's Variables (``settings.model_variable``: its own prefix first, then the deployment's)
and its catalog entry, read per request, so a changed Variable shows at the next page load.
"""

from __future__ import annotations

from fastapi import HTTPException

from sagemaker_retrain import history
from sagemaker_retrain.catalog import ModelSpec
from sagemaker_retrain.settings import aws_conn_id_from_env, model_variable


def aws_conn_id() -> str | None:
    """The AWS connection of the model history page: ``[sagemaker_retrain] aws_conn_id`` (provider config),
    else env ``SAGEMAKER_RETRAIN_AWS_CONN_ID`` (the DAG's), else ``aws_default``; None (the env set empty):
    boto3's own chain, as the DAG's tasks."""
    from airflow.sdk import conf

    return (conf.get("sagemaker_retrain", "aws_conn_id", fallback="")
            or aws_conn_id_from_env())


class Store:
    """Where one model's history lives: its bucket, prefix and history path (its Variables, read per request)."""

    def __init__(self, model: ModelSpec, clients: dict | None = None):
        """``clients``: S3 clients by region, shared by the stores of one request (a client takes ~0.3 s to make)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.model = model
        self.bucket = model_variable("bucket", model.variables_prefix)
        if not self.bucket:
            raise HTTPException(503, f"Variable {model.variables_prefix or ''}bucket / sagemaker_retrain_bucket "
                                     f"is not set (model {model.name})")
        self.prefix = (model_variable("prefix", model.variables_prefix) or "sagemaker-retrain").strip("/")
        self.region = model_variable("region", model.variables_prefix)
        self.path = model.history_path
        clients = {} if clients is None else clients
        if self.region not in clients:
            clients[self.region] = S3Hook(aws_conn_id=aws_conn_id(), region_name=self.region).get_conn()
        self.s3 = clients[self.region]

    def endpoints(self, limit: int = history.MAX_ENDPOINTS) -> tuple[list[str], bool]:
        return history.list_endpoints(self.s3, self.bucket, self.prefix, limit, path=self.path)

    def page(self, endpoint: str, limit: int, offset: int = 0) -> dict:
        return history.read_page(self.s3, self.bucket, self.prefix, endpoint, limit, offset, path=self.path)

    def has_run(self, endpoint: str, slug: str) -> bool:
        """Is there a record of run ``slug`` on ``endpoint`` in this model's history?"""
        key = history.record_key(self.prefix, endpoint, slug, self.path)
        return bool(self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("KeyCount"))

    def sagemaker(self):
        """A SageMaker client with the pipeline's connection and the model's region (the registry and the endpoint)."""
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=aws_conn_id(), region_name=self.region).conn
