"""The Celery worker config preloads the provider and botocore's models once, before the pool forks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from airflow_deployment.celery_worker import CELERY_CONFIG

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "sagemaker_retrain.py"


def test_config_is_airflows_plus_the_warmup_import():
    assert {k: v for k, v in CELERY_CONFIG.items() if k != "imports"} == \
        {k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"}
    assert CELERY_CONFIG["imports"][-1] == "airflow_deployment.worker_warmup"


def test_after_the_warmup_a_tasks_clients_parse_no_botocore_file():
    """What a forked task process inherits: its hooks' sessions build clients without reading a model."""
    script = textwrap.dedent("""
        import sys
        from botocore import loaders
        import airflow_deployment.worker_warmup
        assert {"pandas", "matplotlib.figure", "airflow.providers.amazon.aws.operators.sagemaker"} <= set(sys.modules)
        reads = []
        original = loaders.JSONFileLoader.load_file
        loaders.JSONFileLoader.load_file = lambda self, path: reads.append(path) or original(self, path)
        from airflow_deployment.aws_session import SharedModelsSessionFactory
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        hook = AwsBaseHook(aws_conn_id=None, client_type="sagemaker", region_name="eu-west-1")
        session = SharedModelsSessionFactory(conn=hook.conn_config, region_name="eu-west-1").create_session()
        for service in ("sagemaker", "s3", "sagemaker-runtime", "logs", "cloudwatch"):
            session.client(service, aws_access_key_id="a", aws_secret_access_key="b")
        print(len(reads), reads[:3])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("0 "), out.stdout


def test_a_process_forked_after_the_warmup_collects_none_of_its_objects():
    """The warmup's objects are frozen, so a task process's full collections do not walk them."""
    script = textwrap.dedent("""
        import gc, os, time
        before = len(gc.get_objects())
        import airflow_deployment.worker_warmup
        frozen = gc.get_freeze_count()
        assert frozen > before + 100_000, (before, frozen)
        pid = os.fork()
        if pid == 0:
            tracked = len(gc.get_objects())  # what a full collection in the child walks
            os._exit(0 if tracked < frozen // 10 else 1)
        _, status = os.waitpid(pid, 0)
        print(frozen, os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    frozen, child_exit = out.stdout.split()[-2:]
    assert child_exit == "0", f"the forked child still tracks most of the {frozen} warmed-up objects"


def test_a_tasks_parse_of_the_dag_file_imports_nothing_the_warmup_could_have():
    """What a task process does first, parse its DAG file, finds every module it imports already loaded.

    Each task execution is a fresh fork: a module the warmup misses costs every task its import (the
    ``task`` decorator's, the asset URI handlers' and two of ours cost about 40 ms a task before).
    """
    script = textwrap.dedent(f"""
        import os, sys
        from airflow.providers.celery.executors import celery_executor_utils  # the Celery worker's app
        celery_executor_utils.on_celery_import_modules()  # what Airflow's Celery app preloads
        import airflow_deployment.worker_warmup
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = "sagemaker_retrain"  # as the task runner parses
        # as the deployments set it: the DAG then watches a new-data queue (more to import)
        os.environ["SAGEMAKER_RETRAIN_WATCH_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/new-data"
        before = set(sys.modules)
        from airflow.dag_processing.dagbag import BundleDagBag, DagBag  # what the task runner imports to parse
        bag = DagBag(dag_folder={str(DAG_FILE)!r}, safe_mode=False)
        assert list(bag.dags) == ["sagemaker_retrain"], (bag.dags, bag.import_errors)
        print(sorted(m for m in set(sys.modules) - before if not m.startswith("unusual_prefix_")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
