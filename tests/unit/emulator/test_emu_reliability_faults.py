"""Faults added for the reliability suite: errors after N calls, the uncounted probe, NaN weights."""

from __future__ import annotations

from offline_aws.faults import Faults


def test_server_error_after_n_calls_then_every_call():
    faults = Faults()
    faults.configure({"server_error": {"share": 1.0, "after": 2, "operations": ["InvokeEndpoint"]}})
    verdicts = [faults.on_call("InvokeEndpoint") for _ in range(4)]
    assert verdicts == [None, None, ("server_error", 500), ("server_error", 500)]
    assert faults.snapshot()["server_error"]["after"] == 0


def test_probe_calls_are_neither_counted_nor_faulted():
    faults = Faults()
    faults.configure({"throttle": {"share": 1.0}})
    assert faults.on_call("InvokeEndpoint", probe=True) is None
    assert faults.call_counts() == {}
    assert faults.on_call("InvokeEndpoint") == ("throttle", 400)


def test_nan_weights_fault_is_taken_once_and_cleared():
    faults = Faults()
    faults.configure({"nan_weights_next_training_job": 1})
    assert faults.snapshot()["nan_weights_next_training_job"] == 1
    assert faults.take_nan_weights() is True
    assert faults.take_nan_weights() is False
    faults.configure({"nan_weights_next_training_job": 2})
    faults.clear()
    assert faults.take_nan_weights() is False
