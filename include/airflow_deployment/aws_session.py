"""Session factories for the Amazon provider's ``[aws] session_factory`` setting.

Every ``AwsBaseHook`` makes a new boto3 session, and every new session starts with an empty
botocore data loader, so each client re-reads and re-parses botocore's JSON files: the service
model (SageMaker's is megabytes), endpoints, retry rules. That costs 0.1-0.2 s of CPU per client
and a burst of allocations that sets off full garbage collections; a task that makes a SageMaker,
an S3 and a CloudWatch Logs client pays it three times, and ``airflow dags test`` (every task in
one process) pays it for every hook of every task.

``SharedModelsSessionFactory`` gives every boto3 session it makes a botocore session whose data
loader is one process-wide ``botocore.loaders.Loader`` per data path (so ``AWS_DATA_PATH`` is
honoured), through public API only: ``botocore.loaders.create_loader``,
``botocore.session.Session.register_component`` and ``boto3.session.Session(botocore_session=...)``.
The provider already shares one loader between its async sessions for the same reason.
Credentials, regions, profiles and configs stay per session: only the parsing is shared. Sessions
that assume a role, and async sessions, are the provider's own. Select it with::

    AIRFLOW__AWS__SESSION_FACTORY=airflow_deployment.aws_session.SharedModelsSessionFactory

``FastCallerSessionFactory`` does the same and also installs ``hook_caller`` (see that module:
it replaces two private lookups of the provider) when the first session is made::

    AIRFLOW__AWS__SESSION_FACTORY=airflow_deployment.aws_session.FastCallerSessionFactory
"""

from __future__ import annotations

import threading

import boto3
import botocore.loaders
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

from airflow_deployment import hook_caller

FACTORY_PATH = "airflow_deployment.aws_session.SharedModelsSessionFactory"
FAST_CALLER_FACTORY_PATH = "airflow_deployment.aws_session.FastCallerSessionFactory"

_loaders: dict[str | None, botocore.loaders.Loader] = {}
_lock = threading.Lock()


def shared_botocore_session() -> botocore.session.Session:
    """A new botocore session whose data loader is the process-wide one for its data path."""
    core = botocore.session.Session()
    data_path = core.get_config_variable("data_path")
    with _lock:
        loader = _loaders.get(data_path)
        if loader is None:
            loader = _loaders[data_path] = botocore.loaders.create_loader(data_path)
    core.register_component("data_loader", loader)
    return core


def shared_session(**session_kwargs) -> boto3.session.Session:
    """``boto3.session.Session(**session_kwargs)`` whose parsed data files are shared (see the module)."""
    return boto3.session.Session(botocore_session=shared_botocore_session(), **session_kwargs)


class SharedModelsSessionFactory(BaseSessionFactory):
    """``BaseSessionFactory`` whose boto3 sessions share parsed botocore data files (see the module).

    The sessions made here are the ones the provider's ``create_session`` makes for a connection
    without a role (``boto3.session.Session(**conn.session_kwargs)``) or without a connection
    (``boto3.session.Session(region_name=...)``); the others are the provider's own.
    """

    def create_session(self, deferrable: bool = False):
        if deferrable or (self.conn and self.role_arn):
            return super().create_session(deferrable=deferrable)
        if not self.conn:
            return shared_session(region_name=self.region_name)
        return shared_session(**self.conn.session_kwargs)


class FastCallerSessionFactory(SharedModelsSessionFactory):
    """``SharedModelsSessionFactory`` that also installs ``hook_caller`` (private provider lookups replaced)."""

    def __init__(self, *args, **kwargs):
        hook_caller.install()
        super().__init__(*args, **kwargs)
