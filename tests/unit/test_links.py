"""Console links: registered, attached to the operators, persisted as the Amazon provider's are, formatted."""

from __future__ import annotations

import urllib.parse
from types import SimpleNamespace

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink

from sagemaker_retrain.links import (
    SageMakerEndpointLink,
    SageMakerModelPackageLink,
    SageMakerTrainingJobLink,
    SageMakerTransformJobLink,
)
from sagemaker_retrain.operators.short_waits import SageMakerShortWaitTransformOperator
from sagemaker_retrain.operators.training import SageMakerReattachingTrainingOperator
from sagemaker_retrain.provider_info import get_provider_info
from sagemaker_retrain.sensors.endpoint import EndpointDeployedSensor

LINKS = (SageMakerTrainingJobLink, SageMakerTransformJobLink, SageMakerEndpointLink, SageMakerModelPackageLink)


def _path(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_each_link_is_a_base_aws_link_with_its_own_key():
    assert all(issubclass(cls, BaseAwsLink) for cls in LINKS)
    assert len({cls.key for cls in LINKS}) == len(LINKS)


def test_the_operators_carry_their_links():
    def names(cls):
        return {type(link) for link in cls.operator_extra_links}

    assert SageMakerTrainingJobLink in names(SageMakerReattachingTrainingOperator)
    assert SageMakerTransformJobLink in names(SageMakerShortWaitTransformOperator)
    assert {SageMakerEndpointLink, SageMakerModelPackageLink} <= names(EndpointDeployedSensor)


def test_our_links_are_registered_in_provider_info():
    registered = set(get_provider_info()["extra-links"])
    assert {_path(SageMakerTrainingJobLink), _path(SageMakerEndpointLink), _path(SageMakerModelPackageLink)} <= registered


class _TI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_persist_then_format_gives_the_console_url():
    ti = _TI()
    operator = SimpleNamespace(do_xcom_push=True)
    name = urllib.parse.quote("linear-learner-housing", safe="")
    SageMakerEndpointLink.persist(context={"ti": ti}, operator=operator, region_name="eu-west-1",
                                  aws_partition="aws", endpoint_name=name)
    stored = ti.pushed[SageMakerEndpointLink.key]
    assert SageMakerEndpointLink().format_link(**stored) == (
        "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/endpoints/linear-learner-housing")
    SageMakerTrainingJobLink.persist(context={"ti": ti}, operator=operator, region_name="us-east-1",
                                     aws_partition="aws-cn", job_name="job-1")
    assert SageMakerTrainingJobLink().format_link(**ti.pushed[SageMakerTrainingJobLink.key]) == (
        "https://console.amazonaws.cn/sagemaker/home?region=us-east-1#/jobs/job-1")
    SageMakerModelPackageLink.persist(context={"ti": ti}, operator=operator, region_name="us-east-1",
                                      aws_partition="aws", model_package_group="grp", version="3")
    assert SageMakerModelPackageLink().format_link(**ti.pushed[SageMakerModelPackageLink.key]).endswith(
        "#/model-packages/grp/3")


def test_training_operator_persists_its_link_when_it_starts(monkeypatch):
    ti = _TI()
    operator = SageMakerReattachingTrainingOperator(
        task_id="train", config={"TrainingJobName": "job-x", "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                                 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}},
        aws_conn_id=None, region_name="eu-west-1")

    class Stop(Exception):
        pass

    def stop(name):
        raise Stop

    monkeypatch.setattr(operator, "_existing_job", stop)
    try:
        operator.start({"ti": ti})
    except Stop:
        pass
    assert ti.pushed[SageMakerTrainingJobLink.key]["job_name"] == "job-x"
    assert ti.pushed[SageMakerTrainingJobLink.key]["region_name"] == "eu-west-1"


def test_sensor_links_the_endpoint_and_the_package_its_config_serves(monkeypatch):
    ti = _TI()
    sensor = EndpointDeployedSensor(task_id="w", endpoint_name="ep-1", endpoint_config_name="cfg-1",
                                    aws_conn_id=None, region_name="eu-west-1")
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/linear-learner-housing/7"

    class Conn:
        def describe_endpoint_config(self, EndpointConfigName):
            assert EndpointConfigName == "cfg-1"
            return {"ProductionVariants": [{"ModelName": "m-1"}]}

    hook = SimpleNamespace(conn_region_name="eu-west-1", conn_partition="aws", conn=Conn(),
                           describe_model=lambda name: {"PrimaryContainer": {"ModelPackageName": arn}})
    monkeypatch.setattr(type(sensor), "hook", hook)
    sensor._persist_links({"ti": ti})
    assert SageMakerEndpointLink().format_link(**ti.pushed[SageMakerEndpointLink.key]).endswith("#/endpoints/ep-1")
    assert SageMakerModelPackageLink().format_link(**ti.pushed[SageMakerModelPackageLink.key]).endswith(
        "#/model-packages/linear-learner-housing/7")


def test_sensor_without_a_package_links_the_endpoint_only(monkeypatch):
    ti = _TI()
    sensor = EndpointDeployedSensor(task_id="w", endpoint_name="ep-1", endpoint_config_name="cfg-1",
                                    aws_conn_id=None, region_name="eu-west-1")

    class Conn:
        def describe_endpoint_config(self, EndpointConfigName):
            raise RuntimeError("AccessDenied")

    monkeypatch.setattr(type(sensor), "hook", SimpleNamespace(conn_region_name="eu-west-1", conn_partition="aws",
                                                               conn=Conn()))
    sensor._persist_links({"ti": ti})
    assert set(ti.pushed) == {SageMakerEndpointLink.key}
