"""The deployment's caller lookup: the same names as the Amazon provider's inspect.stack() lookup, no file read.

It replaces private provider code, so these tests compare it with the provider's own lookups: a provider
release that changes what they return (or removes them) fails here.
"""

from __future__ import annotations

import linecache
from unittest import mock

import pytest
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook, AwsGenericHook

from airflow_deployment import hook_caller

ORIGINAL = hook_caller.PROVIDER_LOOKUPS  # the provider's own, even if another test installed ours


@pytest.fixture
def lookups(monkeypatch):
    """Run a callable with the provider's own lookups, then with the installed ones; restore what was there."""
    before = {name: AwsGenericHook.__dict__[name] for name in hook_caller._LOOKUPS}

    def run(call):
        for name, original in ORIGINAL.items():
            monkeypatch.setattr(AwsGenericHook, name, original)
        provider = call()
        assert hook_caller.install()
        return provider, call()
    yield run
    for name, lookup in before.items():
        monkeypatch.setattr(AwsGenericHook, name, lookup)


class TrainModelOperator:
    def execute(self, context=None):
        return AwsBaseHook(aws_conn_id=None, client_type="s3")._get_caller()


class BaseSensorOperator:
    def execute(self, context=None):
        return self.poke(context)


class EndpointUpSensor(BaseSensorOperator):
    def poke(self, context):
        return AwsBaseHook(aws_conn_id=None, client_type="s3")._get_caller()


def test_the_operator_is_named_as_the_provider_names_it(lookups):
    assert lookups(lambda: TrainModelOperator().execute()) == ("TrainModelOperator", "TrainModelOperator")


def test_a_sensor_is_named_by_its_poke(lookups):
    assert lookups(lambda: EndpointUpSensor().execute()) == ("EndpointUpSensor", "EndpointUpSensor")


def test_an_executor_is_found_by_the_module_it_runs_in(lookups):
    namespace = {"AwsBaseHook": AwsBaseHook}
    exec("class BaseExecutor: pass\nclass FargateExecutor(BaseExecutor): pass\n"
         "def sync():\n    return AwsBaseHook(aws_conn_id=None, client_type='s3')._get_caller()\n", namespace)
    assert lookups(namespace["sync"]) == ("FargateExecutor", "FargateExecutor")


def test_no_caller_is_unknown_in_both(lookups):
    assert lookups(lambda: AwsBaseHook(aws_conn_id=None, client_type="s3")._get_caller()) == ("Unknown", "Unknown")


def test_the_installed_lookup_reads_no_source_line(lookups):
    hook = AwsBaseHook(aws_conn_id=None, client_type="s3")
    with mock.patch.object(linecache, "getlines", wraps=linecache.getlines) as read:
        ORIGINAL["_find_operator_class_name"].__func__("execute")
        assert read.call_count > 0  # the provider's own lookup reads sources (the test can fail)
        read.reset_mock()
        assert hook_caller.install()
        assert hook._get_caller() == "Unknown"
        assert TrainModelOperator().execute() == "TrainModelOperator"
        assert read.call_count == 0
