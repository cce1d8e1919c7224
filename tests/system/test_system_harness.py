"""The system test's own promises, on the emulator: a failed task fails it, its tear_down cleans up
after a failed run too, and touches nothing with the env-id that the pipeline's tags do not claim."""

from __future__ import annotations

import example_sagemaker_retrain as system
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator_only(system_aws):
    if system_aws.real:
        pytest.skip("fault injection needs the emulator")
    return system_aws


def test_a_failed_task_fails_the_run_and_tear_down_still_cleans_up(emulator_only, tmp_path, monkeypatch):
    monkeypatch.setenv(system.ENV_ID_KEY, "stfail1")
    ctx = system.build_context()
    emulator_only.emulator.faults.configure({"fail_next_endpoint_create": "system test: injected capacity error"})
    try:
        result = system.run_pipeline(ctx, emulator_only, system.set_up(ctx, emulator_only), tmp_path / "home")
    finally:
        emulator_only.emulator.faults.clear()
        removed = system.tear_down(ctx, emulator_only)
    assert result.states["wait_for_endpoint"] == "failed", result.states
    # The teardowns succeeded, so only the watcher makes the run (and `airflow dags test`) fail.
    assert result.states["teardown"] == "success" and result.states["watcher"] == "failed", result.states
    assert result.state == "failed" and result.returncode != 0
    assert any(r.startswith("model package group") for r in removed), removed
    assert system.leftovers(ctx, emulator_only) == {}


def test_tear_down_leaves_what_the_pipeline_did_not_tag(emulator_only, monkeypatch):
    monkeypatch.setenv(system.ENV_ID_KEY, "stforeign")
    ctx = system.build_context()
    sm = emulator_only.client("sagemaker")
    name = f"someone-elses-{ctx.env_id}"
    sm.create_model(ModelName=name, ExecutionRoleArn=emulator_only.role_arn,
                    PrimaryContainer={"Image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"},
                    Tags=[{"Key": "sagemaker-retrain:project", "Value": "another-project"}])
    system.set_up(ctx, emulator_only)
    try:
        removed = system.tear_down(ctx, emulator_only)
        assert not any(name in r for r in removed), removed
        assert system.leftovers(ctx, emulator_only) == {"models": [name]}
    finally:
        sm.delete_model(ModelName=name)


@pytest.mark.parametrize("env_id", ["ST1", "a", "has-dash", "x" * 13])
def test_env_id_is_checked(env_id, monkeypatch):
    monkeypatch.setenv(system.ENV_ID_KEY, env_id)
    with pytest.raises(ValueError, match="SYSTEM_TESTS_ENV_ID"):
        system.build_context()


def test_names_keep_the_env_id(monkeypatch):
    monkeypatch.setenv(system.ENV_ID_KEY, "abcdefghijkl")
    monkeypatch.setenv("SAGEMAKER_RETRAIN_SYSTEM_NAME_PREFIX", "linear-learner-housing")
    with pytest.raises(ValueError, match="would lose the env-id"):
        system.build_context()


def test_real_aws_refuses_an_emulator_endpoint(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("system_conftest", Path(__file__).with_name("conftest.py"))
    conftest = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "system_conftest", conftest)  # dataclasses look their module up
    spec.loader.exec_module(conftest)
    monkeypatch.setenv(conftest.ROLE_ARN_ENV, "arn:aws:iam::123456789012:role/Execution")
    monkeypatch.setenv(conftest.BUCKET_ENV, "my-bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:4566")
    with pytest.raises(pytest.fail.Exception, match="AWS_ENDPOINT_URL_SAGEMAKER"):
        conftest._real_aws()
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER")
    monkeypatch.delenv(conftest.BUCKET_ENV)
    with pytest.raises(pytest.fail.Exception, match=conftest.BUCKET_ENV):
        conftest._real_aws()
