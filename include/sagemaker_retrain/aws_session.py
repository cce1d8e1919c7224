"""A session factory for the Amazon provider: one parse of each botocore data file per process.

Every ``AwsBaseHook`` makes a new boto3 session, and every new session starts with an empty
botocore data loader, so each client re-reads and re-parses botocore's JSON files: the service
model (SageMaker's is megabytes), endpoints, retry rules. That costs 0.1-0.2 s of CPU per client
and a burst of allocations that sets off full garbage collections; a task that makes a SageMaker,
an S3 and a CloudWatch Logs client pays it three times, and ``airflow dags test`` (every task in
one process) pays it for every hook of every task.

This factory gives each session's loader the process-wide cache of parsed files (one cache per
list of search paths, so ``AWS_DATA_PATH`` is honoured). The parsed files are read-only, and the
provider already shares one loader between its async sessions for the same reason
(``base_aws._loader``). Credentials, regions, endpoints and configs stay per session: only the
parsing is shared. Enable it with the provider's documented setting::

    AIRFLOW__AWS__SESSION_FACTORY=sagemaker_retrain.aws_session.SharedModelsSessionFactory

Importing this module (which that setting does, before the first session is made) also installs
``hook_caller``: the hooks name their calling operator without reading source files.
"""

from __future__ import annotations

import threading

import boto3
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

from sagemaker_retrain import hook_caller

FACTORY_PATH = "sagemaker_retrain.aws_session.SharedModelsSessionFactory"

hook_caller.install()

_caches: dict[tuple[str, ...], dict] = {}
_lock = threading.Lock()


def share_parsed_files(session: boto3.session.Session) -> boto3.session.Session:
    """Point the session's botocore loader at the process-wide cache for its search paths."""
    loader = session._session.get_component("data_loader")
    key = tuple(loader.search_paths)
    with _lock:
        shared = _caches.setdefault(key, loader._cache)  # the dict botocore's instance_cache reads and fills
    if shared is not loader._cache:
        shared.update({k: v for k, v in loader._cache.items() if k not in shared})
        loader._cache = shared
    return session


class SharedModelsSessionFactory(BaseSessionFactory):
    """``BaseSessionFactory`` whose boto3 sessions share parsed botocore data files (see the module)."""

    def _create_basic_session(self, session_kwargs):
        return share_parsed_files(super()._create_basic_session(session_kwargs))

    def create_session(self, deferrable: bool = False):
        session = super().create_session(deferrable=deferrable)
        if isinstance(session, boto3.session.Session):  # async sessions already share the provider's loader
            share_parsed_files(session)
        return session
