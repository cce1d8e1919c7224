"""Deployment guardrails in the backend: blue/green UpdateEndpoint, traffic split, bakes, alarm/timeout rollback.

Two hand-made Linear Learner artifacts answer 1.0 (blue) and 2.0 (green) for any record, so
each invocation says which fleet served it. To look inside a bake deterministically at time
scale 0, the tests spy on the deployment's alarm poll (called at the start and end of every
bake and termination wait, from the deployment's own thread) and invoke the endpoint there.
"""

from __future__ import annotations

import json
from collections import Counter

import boto3
import numpy as np
import pytest
from emu_helpers import BUCKET, IMAGE, ROLE, shape_problems, wait_endpoint, wait_for

from offline_aws.linear_learner.model import LinearLearnerModel, write_model_tar_gz
from offline_aws.sagemaker import deployment
from offline_aws.sagemaker.exceptions import ValidationException

ALARM = "ep-invocation-errors"
HELD = 0.01  # time scale that keeps a 3600 s bake open for 36 s while a 5 s Creating takes 0.05 s


def _artifact(aws, key: str, bias: float) -> str:
    model = LinearLearnerModel("regressor", np.zeros(2), np.array([bias]), loss="squared_loss")
    aws.put_object(Bucket=BUCKET, Key=key, Body=write_model_tar_gz(model))
    return f"s3://{BUCKET}/{key}"


def _fleet(backend, aws, name: str, bias: float, instances: int = 4) -> None:
    backend.create_model(ModelName=f"m-{name}", ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": IMAGE, "ModelDataUrl": _artifact(aws, f"{name}/model.tar.gz", bias)})
    backend.create_endpoint_config(
        EndpointConfigName=f"c-{name}",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"m-{name}", "InstanceType": "ml.m5.large",
                             "InitialInstanceCount": instances}],
    )


@pytest.fixture
def cloudwatch(aws):
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    cw.put_metric_alarm(AlarmName=ALARM, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    return cw


@pytest.fixture
def blue(backend, aws, cloudwatch):
    """Endpoint ``ep`` InService on c-blue (answers 1.0); c-green (answers 2.0) ready to deploy."""
    _fleet(backend, aws, "blue", 1.0)
    _fleet(backend, aws, "green", 2.0)
    backend.create_endpoint(EndpointName="ep", EndpointConfigName="c-blue")
    assert wait_endpoint(backend, "ep")["EndpointStatus"] == "InService"
    return backend


def _answers(backend, n: int) -> Counter:
    out = Counter()
    for _ in range(n):
        payload, _, variant = backend.invoke_endpoint("ep", b"1,1", "text/csv", "application/json")
        assert variant == "AllTraffic"
        out[{1.0: "blue", 2.0: "green"}[json.loads(payload)["predictions"][0]["score"]]] += 1
    return out


def _config(kind="CANARY", *, wait=600, termination=None, timeout=None, size=None, alarms=(ALARM,)) -> dict:
    routing: dict = {"Type": kind, "WaitIntervalInSeconds": wait}
    if kind == "CANARY":
        routing["CanarySize"] = size or {"Type": "CAPACITY_PERCENT", "Value": 10}
    if kind == "LINEAR":
        routing["LinearStepSize"] = size or {"Type": "CAPACITY_PERCENT", "Value": 25}
    policy: dict = {"TrafficRoutingConfiguration": routing}
    if termination is not None:
        policy["TerminationWaitInSeconds"] = termination
    if timeout is not None:
        policy["MaximumExecutionTimeoutInSeconds"] = timeout
    out: dict = {"BlueGreenUpdatePolicy": policy}
    if alarms:
        out["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return out


@pytest.fixture
def spy(monkeypatch, blue):
    """Record (green share, answers to 20 invocations, pending variant status) at every alarm poll."""
    seen: list[tuple[float, Counter, str | None]] = []
    real = deployment.alarms_in_alarm

    def poll(aws, names):
        endpoint = blue.endpoints["ep"]
        pending = blue.describe_endpoint(EndpointName="ep").get("PendingDeploymentSummary")
        status = pending["ProductionVariants"][0]["VariantStatus"][0]["Status"] if pending else None
        seen.append((endpoint.green_share, _answers(blue, 20), status))
        return real(aws, names)

    monkeypatch.setattr(deployment, "alarms_in_alarm", poll)
    return seen


def _done(backend) -> dict:
    return wait_for(lambda: (d := backend.describe_endpoint(EndpointName="ep"))["EndpointStatus"] != "Updating" and d)


# --- traffic shifting ----------------------------------------------------------------------------
def test_canary_sends_its_share_to_green_while_baking_then_all(blue, spy):
    config = _config("CANARY", wait=600, termination=120)
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=config)
    desc = _done(blue)
    # canary bake (start, end) at 10%: every 10th call green; termination wait (start, end) at 100%
    assert [(share, dict(c), status) for share, c, status in spy] == [
        (0.1, {"blue": 18, "green": 2}, "Baking"),
        (0.1, {"blue": 18, "green": 2}, "Baking"),
        (1.0, {"green": 20}, "Baking"),
        (1.0, {"green": 20}, "Baking"),
    ]
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-green")
    assert "FailureReason" not in desc and "PendingDeploymentSummary" not in desc
    assert desc["LastDeploymentConfig"] == config
    assert shape_problems("DescribeEndpoint", desc) == []
    assert _answers(blue, 10) == {"green": 10}
    assert blue.endpoints["ep"].green == {}  # blue is gone, green is the serving fleet


def test_linear_shifts_a_step_after_each_wait(blue, spy):
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green",
                         DeploymentConfig=_config("LINEAR", wait=60, size={"Type": "CAPACITY_PERCENT", "Value": 25}))
    assert _done(blue)["EndpointConfigName"] == "c-green"
    greens = [(share, c["green"]) for share, c, _ in spy]
    assert greens == [(0.25, 5), (0.25, 5), (0.5, 10), (0.5, 10), (0.75, 15), (0.75, 15), (1.0, 20)]
    # (a 0 s termination wait polls once)


def test_instance_count_sizes_are_shares_of_the_new_fleet(blue, spy):
    size = {"Type": "INSTANCE_COUNT", "Value": 1}  # 1 of c-green's 4 instances
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=_config("LINEAR", size=size))
    _done(blue)
    assert sorted({share for share, _, _ in spy}) == [0.25, 0.5, 0.75, 1.0]


def test_all_at_once_bakes_with_all_traffic_on_green(blue, spy):
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=_config("ALL_AT_ONCE"))
    assert _done(blue)["EndpointConfigName"] == "c-green"
    assert [(share, c["green"]) for share, c, _ in spy] == [(1.0, 20)] * 3  # bake (start, end), 0 s termination wait


def test_alarms_only_means_blue_green_all_at_once(blue, spy):
    config = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ALARM}]}}
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=config)
    desc = _done(blue)
    assert desc["EndpointConfigName"] == "c-green" and desc["LastDeploymentConfig"] == config
    assert {share for share, _, _ in spy} == {1.0}


# --- states while it runs ----------------------------------------------------------------------
def test_pending_deployment_summary_through_the_phases(blue):
    blue.clock.time_scale = 1e6  # hold Creating
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green",
                         DeploymentConfig=_config("CANARY", wait=3600, termination=0))
    desc = blue.describe_endpoint(EndpointName="ep")
    assert desc["EndpointStatus"] == "Updating"
    pending = desc["PendingDeploymentSummary"]
    assert pending["EndpointConfigName"] == "c-green" and pending["StartTime"]
    variant = pending["ProductionVariants"][0]
    assert variant["VariantStatus"][0]["Status"] == "Creating"
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"], variant["InstanceType"]) == (0, 4, "ml.m5.large")
    assert shape_problems("DescribeEndpoint", desc) == []
    assert _answers(blue, 5) == {"blue": 5}  # green not loaded yet

    blue.clock.time_scale = HELD  # Creating passes, the 3600 s bake holds
    desc = wait_for(lambda: (d := blue.describe_endpoint(EndpointName="ep"))["PendingDeploymentSummary"]
                    ["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Baking" and d)
    variant = desc["PendingDeploymentSummary"]["ProductionVariants"][0]
    assert desc["EndpointStatus"] == "Updating"
    assert variant["CurrentWeight"] == pytest.approx(0.1) and variant["DesiredWeight"] == 1.0
    assert variant["CurrentInstanceCount"] == 4
    assert variant["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    assert "Baking 3600 s with 10% of the traffic" in variant["VariantStatus"][0]["StatusMessage"]
    assert shape_problems("DescribeEndpoint", desc) == []
    assert _answers(blue, 20) == {"blue": 18, "green": 2}

    blue.clock.time_scale = 0
    desc = _done(blue)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-green")


def test_termination_wait_keeps_blue_until_it_passes(blue, cloudwatch):
    blue.clock.time_scale = HELD
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green",
                         DeploymentConfig=_config("ALL_AT_ONCE", wait=0, termination=3600))
    wait_for(lambda: "TerminationWaitInSeconds" in blue.describe_endpoint(EndpointName="ep")
             ["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["StatusMessage"])
    assert _answers(blue, 10) == {"green": 10}
    assert blue.endpoints["ep"].serving  # the blue fleet still stands by
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="test")
    desc = _done(blue)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-blue")
    assert ALARM in desc["FailureReason"]
    assert _answers(blue, 10) == {"blue": 10}


# --- rollback ---------------------------------------------------------------------------------------
def test_alarm_during_the_canary_bake_rolls_back_to_blue(blue, cloudwatch):
    blue.clock.time_scale = HELD
    config = _config("CANARY", wait=3600, termination=600)
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=config)
    wait_for(lambda: blue.endpoints["ep"].green_share == pytest.approx(0.1))
    assert _answers(blue, 30) == {"blue": 27, "green": 3}
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="5xx on the canary")
    desc = _done(blue)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-blue")
    assert desc["FailureReason"] == deployment.ALARM_REASON.format(alarms=ALARM)
    assert "PendingDeploymentSummary" not in desc
    assert desc["LastDeploymentConfig"] == config
    assert shape_problems("DescribeEndpoint", desc) == []
    assert _answers(blue, 50) == {"blue": 50}  # green never answers again
    assert blue.endpoints["ep"].green == {}
    blue.clock.time_scale = 0
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="recovered")
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=config)  # a retry works
    desc = _done(blue)
    assert desc["EndpointConfigName"] == "c-green" and "FailureReason" not in desc


def test_alarm_during_next_bake_fault_rolls_back_without_timing(blue, cloudwatch):
    blue.faults.configure({"alarm_during_next_bake": ALARM})
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=_config("CANARY"))
    desc = _done(blue)
    assert (desc["EndpointConfigName"], desc["FailureReason"]) == ("c-blue", deployment.ALARM_REASON.format(alarms=ALARM))
    alarm = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM" and "alarm_during_next_bake" in alarm["StateReason"]
    assert blue.faults.snapshot()["alarm_during_next_bake"] == []


def test_a_plain_update_does_not_take_the_bake_fault(blue):
    blue.faults.configure({"alarm_during_next_bake": ALARM})
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green")
    assert _done(blue)["EndpointConfigName"] == "c-green"
    assert blue.faults.snapshot()["alarm_during_next_bake"] == [ALARM]


def test_maximum_execution_timeout_rolls_back(blue, spy):
    # 5 s Creating + 300 s bake + 299 s termination wait > 600 s: the timeout hits during the termination wait
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green",
                         DeploymentConfig=_config("CANARY", wait=300, termination=299, timeout=600))
    desc = _done(blue)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-blue")
    assert desc["FailureReason"] == deployment.TIMEOUT_REASON.format(seconds=600)
    assert spy[-1][0] == 1.0  # it got as far as all traffic on green
    assert _answers(blue, 10) == {"blue": 10}


@pytest.mark.parametrize("how", ["injected", "missing-artifact"])
def test_failed_green_fleet_rolls_back_before_any_shift(blue, aws, spy, how):
    if how == "injected":
        blue.faults.configure({"fail_next_endpoint_update": "injected update failure"})
        target = "c-green"
    else:
        blue.create_model(ModelName="m-bad", ExecutionRoleArn=ROLE,
                          PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/nowhere/model.tar.gz"})
        blue.create_endpoint_config(EndpointConfigName="c-bad", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m-bad", "InstanceType": "ml.m5.large", "InitialInstanceCount": 4}])
        target = "c-bad"
    blue.update_endpoint(EndpointName="ep", EndpointConfigName=target, DeploymentConfig=_config("CANARY"))
    desc = _done(blue)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-blue")
    expected = "injected update failure" if how == "injected" else "Failed to download model data"
    assert expected in desc["FailureReason"]
    assert spy == []  # never baked
    assert _answers(blue, 5) == {"blue": 5}


def test_retain_deployment_config_reuses_the_last_one(blue):
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=_config("CANARY"))
    assert _done(blue)["EndpointConfigName"] == "c-green"
    blue.faults.configure({"alarm_during_next_bake": ALARM})
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-blue", RetainDeploymentConfig=True)
    desc = _done(blue)
    assert desc["EndpointConfigName"] == "c-green" and ALARM in desc["FailureReason"]  # guarded, rolled back


def test_delete_during_a_deployment_drops_it(blue):
    blue.clock.time_scale = HELD
    blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=_config("CANARY", wait=3600))
    wait_for(lambda: blue.endpoints["ep"].green_share > 0)
    blue.clock.time_scale = 0
    blue.delete_endpoint(EndpointName="ep")
    wait_for(lambda: not blue.list_endpoints()["Endpoints"])


# --- validation -------------------------------------------------------------------------------------
def _with(config: dict, path: str, value) -> dict:
    node = config
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    if value is None:
        node.pop(leaf)
    else:
        node[leaf] = value
    return config


ROUTING = "BlueGreenUpdatePolicy.TrafficRoutingConfiguration"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                                  "WaitIntervalInSeconds": 60}},
         "RollingUpdatePolicy is not supported by the offline emulator"),
        (_with(_config("CANARY"), f"{ROUTING}.CanarySize", None),
         "CanarySize must be specified when the traffic routing Type is CANARY."),
        (_with(_config("LINEAR"), f"{ROUTING}.LinearStepSize", None),
         "LinearStepSize must be specified when the traffic routing Type is LINEAR."),
        (_config("CANARY", size={"Type": "CAPACITY_PERCENT", "Value": 60}), "less than or equal to 50%"),
        (_config("CANARY", size={"Type": "INSTANCE_COUNT", "Value": 3}), "less than or equal to 50%"),
        (_config("LINEAR", size={"Type": "CAPACITY_PERCENT", "Value": 5}), "10-50%"),
        (_config("LINEAR", size={"Type": "INSTANCE_COUNT", "Value": 3}), "10-50%"),
        (_config("CANARY", wait=300, termination=300, timeout=600),
         "MaximumExecutionTimeoutInSeconds (600) must be larger than the total waiting time"),
        (_config("CANARY", timeout=599),
         "Value '599' at 'deploymentConfig.blueGreenUpdatePolicy.maximumExecutionTimeoutInSeconds' failed to "
         "satisfy constraint: Member must have value greater than or equal to 600"),
        (_config("CANARY", timeout=28801), "Member must have value less than or equal to 28800"),
        (_config("CANARY", wait=3601), "Member must have value less than or equal to 3600"),
        (_config("CANARY", termination=-1), "Member must have value greater than or equal to 0"),
        (_config("CANARY", size={"Type": "CAPACITY_PERCENT", "Value": 0}),
         "Member must have value greater than or equal to 1"),
        (_config("BLUE"), "Member must satisfy enum value set: [ALL_AT_ONCE, CANARY, LINEAR]"),
        (_with(_config("CANARY"), f"{ROUTING}.WaitIntervalInSeconds", None),
         "Value null at 'deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration.waitIntervalInSeconds'"),
        ({"AutoRollbackConfiguration": {"Alarms": []}}, "Member must have length greater than or equal to 1"),
        (_config("CANARY", alarms=[ALARM, "no-such-alarm"]),
         "The CloudWatch alarm(s) no-such-alarm in DeploymentConfig.AutoRollbackConfiguration could not be found."),
    ],
)
def test_invalid_deployment_configs_are_refused(blue, config, message):
    with pytest.raises(ValidationException) as err:
        blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green", DeploymentConfig=config)
    assert message in err.value.message
    desc = blue.describe_endpoint(EndpointName="ep")
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "c-blue")


def test_valid_edge_sizes_are_accepted(blue):
    for size, kind in (({"Type": "INSTANCE_COUNT", "Value": 2}, "CANARY"), ({"Type": "CAPACITY_PERCENT", "Value": 50}, "LINEAR")):
        blue.update_endpoint(EndpointName="ep", EndpointConfigName="c-green" if kind == "CANARY" else "c-blue",
                             DeploymentConfig=_config(kind, size=size, wait=0, timeout=600))
        assert "FailureReason" not in _done(blue)


def test_create_endpoint_checks_and_keeps_its_deployment_config(blue, cloudwatch):
    with pytest.raises(ValidationException, match="CanarySize must be specified"):
        blue.create_endpoint(EndpointName="ep2", EndpointConfigName="c-blue",
                             DeploymentConfig=_with(_config("CANARY"), f"{ROUTING}.CanarySize", None))
    assert blue.list_endpoints()["Endpoints"][0]["EndpointName"] == "ep"  # nothing created
    config = _config("CANARY", wait=0)
    blue.create_endpoint(EndpointName="ep2", EndpointConfigName="c-blue", DeploymentConfig=config)
    desc = wait_endpoint(blue, "ep2")
    assert (desc["EndpointStatus"], desc["LastDeploymentConfig"]) == ("InService", config)
    blue.faults.configure({"alarm_during_next_bake": ALARM})
    blue.update_endpoint(EndpointName="ep2", EndpointConfigName="c-green", RetainDeploymentConfig=True)
    desc = wait_for(lambda: (d := blue.describe_endpoint(EndpointName="ep2"))["EndpointStatus"] != "Updating" and d)
    assert desc["EndpointConfigName"] == "c-blue" and ALARM in desc["FailureReason"]
