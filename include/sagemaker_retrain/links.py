"""Console links on the task page: the run's training job, transform jobs, endpoint and model package.

``BaseAwsLink`` subclasses, persisted as the Amazon provider's operators do: the operator calls
``<Link>.persist(context=..., operator=..., region_name=hook.conn_region_name,
aws_partition=hook.conn_partition, <fields>)`` once it knows the resource, which stores the fields
in an XCom under the link's ``key``; the UI's link button formats ``format_str`` with them.

The transform jobs' link is the provider's own ``SageMakerTransformJobLink`` (re-exported here):
the scoring operator is the provider's ``SageMakerTransformOperator``, which already persists it.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.links.sagemaker import SageMakerTransformJobLink

SAGEMAKER_CONSOLE = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}"

__all__ = ["SageMakerEndpointLink", "SageMakerModelPackageLink", "SageMakerTrainingJobLink",
           "SageMakerTransformJobLink"]


class SageMakerTrainingJobLink(BaseAwsLink):
    """The training job in the SageMaker console. Fields: ``job_name`` (URL-quoted)."""

    name = "SageMaker Training Job"
    key = "sagemaker_retrain_training_job"
    format_str = SAGEMAKER_CONSOLE + "#/jobs/{job_name}"


class SageMakerEndpointLink(BaseAwsLink):
    """The endpoint in the SageMaker console. Fields: ``endpoint_name`` (URL-quoted)."""

    name = "SageMaker Endpoint"
    key = "sagemaker_retrain_endpoint"
    format_str = SAGEMAKER_CONSOLE + "#/endpoints/{endpoint_name}"


class SageMakerModelPackageLink(BaseAwsLink):
    """The model package (the registry version the endpoint serves) in the SageMaker console.

    Fields: ``model_package_group`` and ``version`` (URL-quoted).
    """

    name = "SageMaker Model Package"
    key = "sagemaker_retrain_model_package"
    format_str = SAGEMAKER_CONSOLE + "#/model-packages/{model_package_group}/{version}"
