"""Deploy when another deployment wins the race: a clear, retryable refusal, never a raw ClientError."""

from __future__ import annotations

from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError

from sagemaker_retrain.operators.endpoint import SageMakerDeployOperator

CONFIG = {
    "EndpointConfig": {"EndpointConfigName": "ep-new", "ProductionVariants": [{
        "ModelName": "ep-new", "VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
                       "Tags": [{"Key": "sagemaker-retrain:run-id", "Value": "run-1"}]},
    "Endpoint": {"EndpointName": "ep", "EndpointConfigName": "ep-new", "Tags": []},
    "DeploymentConfig": None, "Alarms": [], "MaxWaitSeconds": 60,
    "Champion": {"EndpointConfigName": "ep-old"}, "ModelPackageArn": None,
}


def _operator(update_error: ClientError):
    op = SageMakerDeployOperator(task_id="deploy", config=CONFIG)
    hook = mock.MagicMock()
    hook.describe_endpoint_config.return_value = {"EndpointConfigArn": "arn:config"}
    hook.conn.list_tags.return_value = {"Tags": [{"Key": "sagemaker-retrain:run-id", "Value": "run-1"}]}
    hook.conn.update_endpoint.side_effect = update_error
    serving = {"EndpointStatus": "InService", "EndpointConfigName": "ep-old"}
    patches = [mock.patch.object(SageMakerDeployOperator, "hook", new_callable=mock.PropertyMock, return_value=hook),
               mock.patch("sagemaker_retrain.operators.endpoint.require_owned_endpoint", return_value=serving)]
    return op, patches


def _client_error(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateEndpoint")


def test_update_refused_because_another_started_is_a_clear_retryable_refusal():
    op, patches = _operator(_client_error('Cannot update in-progress endpoint "arn:aws:sagemaker:x:1:endpoint/ep".'))
    with patches[0], patches[1], pytest.raises(AirflowException, match="it must be InService to be updated") as err:
        op.execute({})
    assert "another deployment" in str(err.value) and "Cannot update in-progress" in str(err.value)


def test_other_validation_errors_are_not_hidden():
    op, patches = _operator(_client_error("Could not find endpoint configuration ep-new."))
    with patches[0], patches[1], pytest.raises(ClientError, match="Could not find"):
        op.execute({})
