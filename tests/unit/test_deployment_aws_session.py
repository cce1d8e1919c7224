"""The deployment's session factory shares parsed botocore data files between sessions, and nothing else.

These tests fail if the upstream behaviour it relies on changes: botocore's loader caching parsed
files per ``Loader`` instance, and the provider's ``BaseSessionFactory.create_session`` making a plain
``boto3.session.Session(**conn.session_kwargs)`` for a connection without a role.
"""

from __future__ import annotations

import json

import boto3
import botocore.loaders
import botocore.session
import pytest
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory, resolve_session_factory
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

from airflow_deployment import aws_session, hook_caller
from airflow_deployment.aws_session import (
    FACTORY_PATH,
    FAST_CALLER_FACTORY_PATH,
    FastCallerSessionFactory,
    SharedModelsSessionFactory,
    shared_session,
)


def _wrapper(conn_id: str, region: str, key: str) -> AwsConnectionWrapper:
    conn = Connection(conn_id=conn_id, conn_type="aws", login=key, password="secret",
                      extra=json.dumps({"region_name": region}))
    return AwsConnectionWrapper(conn=conn)


@pytest.fixture
def file_reads(monkeypatch):
    """Names of the botocore JSON files read from disk (and parsed) from now on."""
    reads: list[str] = []
    original = botocore.loaders.JSONFileLoader.load_file

    def counting(self, file_path):
        reads.append(str(file_path))
        return original(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting)
    monkeypatch.setattr(aws_session, "_loaders", {})
    return reads


@pytest.mark.parametrize("factory_class, parses_again", [(SharedModelsSessionFactory, False),
                                                         (BaseSessionFactory, True)])
def test_a_second_session_reuses_the_parsed_service_model(file_reads, factory_class, parses_again):
    first = factory_class(conn=_wrapper("aws_a", "us-east-1", "AKIAFIRST")).create_session()
    first.client("sagemaker")
    assert any("sagemaker/" in path for path in file_reads)
    file_reads.clear()

    second = factory_class(conn=_wrapper("aws_b", "eu-west-1", "AKIASECOND")).create_session()
    client = second.client("sagemaker")
    assert bool(file_reads) is parses_again, file_reads
    # Only the parsing is shared: region and credentials stay the session's own.
    assert client.meta.region_name == "eu-west-1"
    assert second.get_credentials().access_key == "AKIASECOND"
    assert first.get_credentials().access_key == "AKIAFIRST"


def test_sessions_without_a_connection_share_too(file_reads):
    no_conn = AwsConnectionWrapper(conn=None, region_name="us-east-2")
    SharedModelsSessionFactory(conn=no_conn).create_session().client("s3")
    file_reads.clear()
    client = SharedModelsSessionFactory(conn=no_conn).create_session().client("s3")
    assert file_reads == []
    assert client.meta.region_name == "us-east-2"


def test_each_data_path_has_its_own_loader(file_reads, tmp_path, monkeypatch):
    """AWS_DATA_PATH (botocore's data_path) gives other files: those sessions do not share the loader."""
    plain = shared_session(region_name="us-east-1")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    custom = shared_session(region_name="us-east-1")
    monkeypatch.delenv("AWS_DATA_PATH")
    plain_loader = plain._session.get_component("data_loader")
    custom_loader = custom._session.get_component("data_loader")
    assert plain_loader is not custom_loader
    assert str(tmp_path) in custom_loader.search_paths and str(tmp_path) not in plain_loader.search_paths
    again = shared_session(region_name="us-west-2")
    assert again._session.get_component("data_loader") is plain_loader


@pytest.mark.parametrize("extra", [{"region_name": "eu-west-1"},
                                   {"region_name": "eu-west-1", "aws_session_token": "TOKEN"},
                                   {}])
def test_the_session_is_the_one_the_provider_makes(extra):
    """Same credentials, region and profile as the provider's own factory (its no-role path)."""
    conn = Connection(conn_id="aws_x", conn_type="aws", login="AKIAX", password="secret", extra=json.dumps(extra))
    ours = SharedModelsSessionFactory(conn=AwsConnectionWrapper(conn=conn)).create_session()
    theirs = BaseSessionFactory(conn=AwsConnectionWrapper(conn=conn)).create_session()
    assert type(ours) is type(theirs) is boto3.session.Session
    assert ours.region_name == theirs.region_name
    assert ours.profile_name == theirs.profile_name
    assert ours.get_credentials().get_frozen_credentials() == theirs.get_credentials().get_frozen_credentials()
    assert theirs._session.get_component("data_loader") is not ours._session.get_component("data_loader")


def test_role_and_async_sessions_are_the_providers():
    conn = Connection(conn_id="aws_r", conn_type="aws", extra=json.dumps(
        {"role_arn": "arn:aws:iam::123456789012:role/x", "region_name": "us-east-1"}))
    factory = SharedModelsSessionFactory(conn=AwsConnectionWrapper(conn=conn))
    assert factory.role_arn  # so create_session takes the provider's assume-role path (not called: no STS here)
    async_session = SharedModelsSessionFactory(conn=_wrapper("aws_a", "us-east-1", "AKIA")).create_session(
        deferrable=True)
    assert not isinstance(async_session, boto3.session.Session)


def test_the_provider_setting_selects_the_factories(monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS__SESSION_FACTORY", FACTORY_PATH)
    assert resolve_session_factory() is SharedModelsSessionFactory
    monkeypatch.setenv("AIRFLOW__AWS__SESSION_FACTORY", FAST_CALLER_FACTORY_PATH)
    assert resolve_session_factory() is FastCallerSessionFactory


def test_only_the_fast_caller_factory_installs_the_caller_lookup(monkeypatch):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    for name, original in hook_caller.PROVIDER_LOOKUPS.items():
        monkeypatch.setattr(AwsGenericHook, name, original)
    SharedModelsSessionFactory(conn=None, region_name="us-east-1").create_session()
    assert AwsGenericHook.__dict__["_find_operator_class_name"] is hook_caller.PROVIDER_LOOKUPS[
        "_find_operator_class_name"]
    FastCallerSessionFactory(conn=None, region_name="us-east-1").create_session()
    assert AwsGenericHook.__dict__["_find_operator_class_name"].__func__ is hook_caller.find_operator_class_name
