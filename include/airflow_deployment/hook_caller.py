"""Name the operator that makes an AWS client without reading any source file.

Every client an Amazon-provider hook makes carries the calling operator's class in its user agent
(``Caller/SageMakerTrainingOperator``). The provider (9.39.0) finds it with ``inspect.stack()``,
which builds the full frame info of every frame on the stack: it reads each frame's source lines
and, the first time in a process, resolves the real path of every loaded module to map files to
modules. Under Celery the stack is deep and the worker preloads many modules, so in each
short-lived task process this took 0.1-0.3 s of CPU per task, about a third of the task
processes' CPU in a profiled run (docs/benchmarks.md).

``install()`` replaces the provider's two lookups with a walk over the frames that returns the
same names (the first frame, innermost out, running a function of that name; the last class of
the first frame whose module holds ``BaseExecutor``) and reads nothing. This replaces private
static methods of ``AwsGenericHook``, which is why it lives in the deployment's configuration and
never in the provider package: it is opt-in, installed by ``aws_session.FastCallerSessionFactory``
(``[aws] session_factory``) and by the Celery worker's warmup (``[celery] celery_config_options``).
Provider versions without these lookups are left alone, and tests/unit/test_deployment_hook_caller.py
compares both lookups' answers, so a provider release that changes them fails it.
"""

from __future__ import annotations

import inspect
import sys

from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

_LOOKUPS = ("_find_operator_class_name", "_find_executor_class_name")
PROVIDER_LOOKUPS = {name: AwsGenericHook.__dict__.get(name) for name in _LOOKUPS}  # before any install()


def find_operator_class_name(target_function_name: str) -> str | None:
    """The class of ``self`` in the innermost frame running ``target_function_name`` (as the provider's)."""
    frame = sys._getframe(0)
    while frame is not None:
        if frame.f_code.co_name == target_function_name:
            return type(frame.f_locals["self"]).__name__  # KeyError as the provider's: its caller catches it
        frame = frame.f_back
    return None


def find_executor_class_name() -> str | None:
    """The last class in the globals of the innermost frame whose module holds ``BaseExecutor`` (as the provider's)."""
    frame = sys._getframe(0)
    while frame is not None:
        classes = [name for name, obj in frame.f_globals.items() if inspect.isclass(obj)]
        if "BaseExecutor" in classes:
            return classes[-1]
        frame = frame.f_back
    return None


_REPLACEMENTS = {"_find_operator_class_name": find_operator_class_name,
                 "_find_executor_class_name": find_executor_class_name}


def install() -> bool:
    """Use the frame walks in every Amazon hook of this process; False if this provider has no such lookups."""
    if not all(isinstance(AwsGenericHook.__dict__.get(name), staticmethod) for name in _LOOKUPS):
        return False
    for name in _LOOKUPS:
        setattr(AwsGenericHook, name, staticmethod(_REPLACEMENTS[name]))
    return True
