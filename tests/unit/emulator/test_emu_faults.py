"""The fault plan: deterministic shares, counts, operation filters, latency and the call counter."""

from __future__ import annotations

import time

import pytest

from offline_aws.faults import Faults
from offline_aws.settings import Clock


def test_throttle_share_is_exact_and_deterministic():
    faults = Faults()
    faults.configure({"throttle": {"share": 0.5}})
    verdicts = [faults.on_call("DescribeTrainingJob") for _ in range(10)]
    assert verdicts.count(("throttle", 400)) == 5
    assert verdicts[1] == ("throttle", 400) and verdicts[0] is None


def test_server_error_count_and_operation_filter():
    faults = Faults()
    faults.configure({"server_error": {"count": 2, "status": 503, "operations": ["CreateEndpoint"]}})
    assert faults.on_call("DescribeEndpoint") is None
    assert faults.on_call("CreateEndpoint") == ("server_error", 503)
    assert faults.on_call("CreateEndpoint") == ("server_error", 503)
    assert faults.on_call("CreateEndpoint") is None
    assert faults.call_counts() == {"DescribeEndpoint": 1, "CreateEndpoint": 3}


def test_latency_is_added():
    faults = Faults()
    faults.configure({"latency": 0.2})
    started = time.monotonic()
    faults.on_call("ListEndpoints")
    assert time.monotonic() - started >= 0.2


def test_fail_next_queues_are_one_shot():
    faults = Faults()
    faults.configure({"fail_next_training_job": ["a", "b"], "fail_next_endpoint_create": "c"})
    assert [faults.take_training_failure() for _ in range(3)] == ["a", "b", None]
    assert faults.take_endpoint_create_failure() == "c"
    assert faults.take_endpoint_update_failure() is None


def test_bad_specs_are_refused_and_clear_resets():
    faults = Faults()
    with pytest.raises(ValueError, match="unknown fault kinds"):
        faults.configure({"explode": True})
    with pytest.raises(ValueError, match="share"):
        faults.configure({"throttle": 2})
    faults.configure({"throttle": 1.0})
    faults.clear()
    assert faults.on_call("X") is None


def test_clock_scales_and_can_be_released():
    clock = Clock(0)
    started = time.monotonic()
    clock.pause(1000)
    assert time.monotonic() - started < 0.1
    clock.time_scale = 0.01
    started = time.monotonic()
    clock.pause(10)
    assert 0.09 <= time.monotonic() - started < 1.0
