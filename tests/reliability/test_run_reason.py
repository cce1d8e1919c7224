"""The "reason given" column: the exception the run raised, never a source line of its traceback."""

from __future__ import annotations

from reliability_harness import run_errors, run_reason

OUTPUT = """\
2026-11-27T16:34:42.116446Z [info     ] [DAG TEST] starting task_id=wait_for_endpoint map_index=-1 [dag]
2026-11-27T16:34:43.201066Z [error    ] Task failed with exception     [task] loc=task_runner.py:1639
Traceback (most recent call last):
  File "/x/include/sagemaker_retrain/smoke.py", line 40, in check
    raise SmokeTestError(f"Prediction {i} has no finite score: {prediction!r}")
sagemaker_retrain.smoke.SmokeTestError: Prediction 0 has no finite score: {'score': nan}
2026-11-27T16:34:43.201651Z [info     ] ::group::Post Execute          [task] loc=task_runner.py:1640
2026-11-27T16:34:44.000000Z [info     ] [DAG TEST] starting task_id=teardown map_index=-1 [dag]
Traceback (most recent call last):
  File "/x/include/sagemaker_retrain/outcome.py", line 99, in teardown
    raise AirflowFailException(
airflow.sdk.exceptions.AirflowFailException: The run failed: task(s) wait_for_endpoint failed.
Restore: endpoint e serves c-old.
2026-11-27T16:34:45.000000Z [info     ] done
"""


def test_reason_is_the_exception_message_not_the_raise_line():
    assert run_reason(OUTPUT, "no finite score") == "SmokeTestError: Prediction 0 has no finite score: {'score': nan}"
    errors = run_errors(OUTPUT)
    assert [(e.task, e.exc_type) for e in errors] == [("wait_for_endpoint", "SmokeTestError"),
                                                      ("teardown", "AirflowFailException")]
    assert errors[1].message == "The run failed: task(s) wait_for_endpoint failed.\nRestore: endpoint e serves c-old."
    # No needle found: the first exception the run raised; none raised: nothing.
    assert run_reason(OUTPUT, "not there").startswith("SmokeTestError: Prediction 0")
    assert run_reason("2026-11-27T16:34:45Z [info] all good\n", "x") == ""
