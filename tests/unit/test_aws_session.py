"""The session factory shares parsed botocore data files between sessions, and nothing else."""

from __future__ import annotations

import json

import boto3
import botocore.loaders
import botocore.session
import pytest
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory, resolve_session_factory
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

from sagemaker_retrain import aws_session
from sagemaker_retrain.aws_session import FACTORY_PATH, SharedModelsSessionFactory, share_parsed_files


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
    monkeypatch.setattr(aws_session, "_caches", {})
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


def test_each_session_keeps_its_own_loader_and_search_paths(file_reads, tmp_path):
    """AWS_DATA_PATH (botocore's data_path) gives other files: those sessions do not share the cache."""
    plain = share_parsed_files(boto3.session.Session(region_name="us-east-1"))
    custom_core = botocore.session.Session()
    custom_core.set_config_variable("data_path", str(tmp_path))
    custom = share_parsed_files(boto3.session.Session(botocore_session=custom_core, region_name="us-east-1"))
    plain_loader = plain._session.get_component("data_loader")
    custom_loader = custom._session.get_component("data_loader")
    assert plain_loader is not custom_loader
    assert str(tmp_path) in custom_loader.search_paths and str(tmp_path) not in plain_loader.search_paths
    assert plain_loader._cache is not custom_loader._cache
    again = share_parsed_files(boto3.session.Session(region_name="us-west-2"))
    assert again._session.get_component("data_loader")._cache is plain_loader._cache


def test_the_provider_setting_selects_the_factory(monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS__SESSION_FACTORY", FACTORY_PATH)
    assert resolve_session_factory() is SharedModelsSessionFactory
