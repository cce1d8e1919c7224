"""DAG integrity: the folder parses cleanly, cheaply, and every DAG follows the house rules.

Every model of the catalog (include/models/*.yaml) is checked: its DAG id comes from the catalog, not
from this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from airflow.sdk.exceptions import ParamValidationError

from sagemaker_retrain.catalog import load_catalog

PROJECT_DIR = Path(__file__).resolve().parents[2]
DAGS_DIR = PROJECT_DIR / "dags"
CATALOG = load_catalog(PROJECT_DIR / "include" / "models", root=PROJECT_DIR)
SPECS = {spec.dag_id: spec for spec in CATALOG.specs}
MODEL_DAGS = sorted(SPECS)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert CATALOG.errors == ()
    assert set(dagbag.dags) == set(MODEL_DAGS)  # one DAG per model, and no catalog_error DAG
    assert len(MODEL_DAGS) >= 2


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_each_model_dag_is_its_catalog_entry(dagbag, dag_id):
    spec, dag = SPECS[dag_id], dagbag.dags[dag_id]
    assert dag.owner == ",".join(spec.owners) and dag.owner != "airflow"
    assert set(spec.tags) <= set(dag.tags)
    for name, value in spec.param_defaults(set(dag.params.keys())).items():
        assert dag.params.get_param(name).value == value, name
    # The tasks that change the endpoint share its pool with every DAG of that endpoint.
    pools = {t.task_id: t.pool for t in dag.tasks if t.pool != "default_pool"}
    assert pools == {"deploy": spec.pool, "restore": spec.pool}
    assert spec.pool in CATALOG.pools()
    publish = dag.get_task("publish")
    assert [a.name for a in publish.outlets] == [f"{dag_id}_served_model"]
    # The approval step's inputs are arguments: the run's plan and the gate's evidence as XComArgs, the
    # model's own approval policy and approvers from its catalog entry.
    approve = dag.get_task("approve")
    assert approve.plan.operator.task_id == "prepare"
    assert (approve.evidence.operator.task_id, approve.evidence.key) == ("gate", "evidence")
    assert (approve.require_approval, tuple(approve.approvers)) == (spec.approval_required, spec.approvers)
    assert spec.file in dag.doc_md


def test_the_walkthrough_model_keeps_its_dag_id_and_todays_defaults(dagbag):
    from sagemaker_retrain.params import build_params

    dag = dagbag.dags["sagemaker_retrain"]
    assert {name: dag.params.get_param(name).value for name in dag.params.keys()} == {
        name: param.value for name, param in build_params(algorithm="linear-learner").items()}


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_a_models_form_has_its_own_algorithms_training_section_only(dagbag, dag_id):
    from sagemaker_retrain import algorithms

    dag, spec = dagbag.dags[dag_id], SPECS[dag_id]
    training = {dag.params.get_param(name).schema["section"] for name in dag.params.keys()
                if dag.params.get_param(name).schema["section"].startswith("Training")}
    assert training == {algorithms.get(spec.algorithm).section}
    assert dag.params["algorithm"] == spec.algorithm
    # Its hyperparameters are every one the strategy has, with the catalog's values where it sets them.
    own = algorithms.get(spec.algorithm).form_defaults()
    assert {name: dag.params[name] for name in own} == {**own, **spec.hyperparameters}


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_no_task_holds_a_copy_of_the_dags_params(dagbag, dag_id):
    # The DAG's Params are set once its tasks exist: an operator made in a DAG that has them deep-copies them
    # all, once per class of its constructor chain, which was most of a parse (docs/upstream.md §6).
    dag = dagbag.dags[dag_id]
    for task in dag.tasks:
        assert not set(task.params) & set(dag.params), f"{task.task_id} holds a copy of the DAG's Params"
    assert set(dag.get_task("approve").params) == {"comment"}  # the approval form's own field only


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_every_xcom_a_task_takes_from_prepare_or_register_is_pushed(dagbag, dag_id):
    # prepare and register push one XCom each (not multiple_outputs: a request to the API server per key), and
    # prepare pushes the keys operators take one by one (plan["..."]) itself; a key taken but not pushed would
    # fail that task at run time, after the training job was paid for.
    from airflow.sdk import XComArg

    dag = dagbag.dags[dag_id]
    operator_inputs = dag.get_task("prepare").python_callable.__globals__["OPERATOR_INPUTS"]  # the DAG file's
    taken: dict[str, set[str]] = {"prepare": set(), "register": set()}
    for task in dag.tasks:
        values = [getattr(task, field, None) for field in task.template_fields]
        values += [getattr(task, "partial_kwargs", None), getattr(getattr(task, "expand_input", None), "value", None)]
        for operator, key in XComArg.iter_xcom_references(values):
            if operator.task_id in taken:
                taken[operator.task_id].add(key)
    assert dag.get_task("prepare").multiple_outputs is False
    assert dag.get_task("register").multiple_outputs is False
    assert taken["register"] == {"return_value"}
    assert taken["prepare"] - {"return_value"} == set(operator_inputs)


def test_prepare_pushes_the_keys_operators_take(dagbag, monkeypatch):
    # prepare's body, run with the pipeline's plan stubbed: it pushes each key of OPERATOR_INPUTS (what the test
    # above checks the tasks take) and returns the whole plan.
    from types import SimpleNamespace

    from sagemaker_retrain import pipeline

    prepare = dagbag.dags["sagemaker_retrain"].get_task("prepare")
    operator_inputs = prepare.python_callable.__globals__["OPERATOR_INPUTS"]
    plan = {key: f"value of {key}" for key in (*operator_inputs, "names", "settings", "data")}
    monkeypatch.setattr(pipeline, "prepare", lambda *args, **kwargs: plan)
    pushed = {}
    ti = SimpleNamespace(dag_id="sagemaker_retrain", get_task_states=lambda **kwargs: {},
                         xcom_push=lambda key, value: pushed.__setitem__(key, value))
    dag_run = SimpleNamespace(run_type="manual", run_after=None, clear_number=0)
    returned = prepare.python_callable(params={}, run_id="manual__1", dag_run=dag_run, ti=ti)
    assert returned == plan
    assert pushed == {key: plan[key] for key in operator_inputs}


@pytest.mark.parametrize("task_id", ["prepare", "train", "score", "approve", "teardown"])
def test_a_task_sees_the_dags_params_at_run_time(dagbag, task_id):
    # What the task runner gives a task as context["params"] (and what "{{ params.mode }}" renders): the
    # DAG's Params, then the task's own, then the run's conf; on a copy, as process_params sets the conf on them.
    import copy

    from airflow.sdk.definitions.param import process_params

    dag = copy.deepcopy(dagbag.dags["sagemaker_retrain"])
    params = process_params(dag, dag.get_task(task_id), {"mode": "ephemeral"}, suppress_exception=False)
    assert set(dag.params) <= set(params)
    assert params["mode"] == "ephemeral" and params["algorithm"] == "linear-learner"
    assert ("comment" in params) == (task_id == "approve")


def test_every_dag_has_tags_docs_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 50, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            if task.task_id == "watcher":  # it only fails the run: a retry would fail again
                assert task.retries == 0
                continue
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_no_cycles_and_expected_shape(dagbag, dag_id):
    from airflow.sdk.definitions.dag import DAG  # noqa: F401  (import proves the SDK is there)

    dag = dagbag.dags[dag_id]
    dag.check_cycle() if hasattr(dag, "check_cycle") else None
    order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else None
    ids = set(dag.task_ids)
    assert {"prepare", "train", "pin_champion", "stage", "score", "gate", "deploy",
            "wait_for_endpoint", "teardown", "restore", "keep_champion", "publish", "watcher"} <= ids
    assert dag.get_task("teardown").is_teardown
    assert dag.get_task("teardown").on_failure_fail_dagrun
    # The undo of a deployment is the teardown of deploy, the one place that puts a config back.
    restore = dag.get_task("restore")
    assert restore.is_teardown and "deploy" in restore.upstream_task_ids
    assert "restore" in dag.get_task("teardown").upstream_task_ids
    # Champion and challenger are scored (one mapped transform each) before anything is deployed; the
    # champion is pinned before they are.
    assert "score" in dag.get_task("gate").upstream_task_ids
    assert "pin_champion" in dag.get_task("stage").upstream_task_ids
    assert "gate" in dag.get_task("deploy").upstream_task_ids
    # The run's state is the framework's: a ONE_FAILED watcher below every task that is not a setup.
    watcher = dag.get_task("watcher")
    assert watcher.trigger_rule == "one_failed"
    assert watcher.upstream_task_ids == {t.task_id for t in dag.tasks if not t.is_setup} - {"watcher", "teardown"}
    assert not dag.get_task("teardown").downstream_task_ids  # a leaf: its on_failure_fail_dagrun counts
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    if order:
        assert order.index("prepare") < order.index("train") < order.index("deploy")


def test_dag_serializes_as_the_scheduler_stores_it(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbag.dags.values():
        assert DagSerialization.to_dict(dag)["dag"]["dag_id"] == dag.dag_id


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_every_task_has_an_execution_timeout_and_failure_alert(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback, task.task_id
    assert not dag.deadline, "off by default: `airflow dags test` fails on a DAG with one (apache/airflow#73428)"


def test_the_deployments_deadline_alert_is_there_when_set():
    script = ("import os; os.environ['SAGEMAKER_RETRAIN_DEADLINE_HOURS'] = '2'\n"
              "from airflow.dag_processing.dagbag import DagBag\n"
              f"dags = DagBag(dag_folder={str(DAGS_DIR)!r}).dags\n"
              f"print([len(dags[d].deadline or []) for d in {MODEL_DAGS!r}])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str([1] * len(MODEL_DAGS)), "a deadline alert per model"


PARSE_PROBE = textwrap.dedent(
    """
    import json, socket, sys, os
    opened = []
    real_connect = socket.socket.connect
    def guarded(self, address):
        opened.append(repr(address))
        raise OSError("network is forbidden while parsing")
    socket.socket.connect = guarded
    socket.create_connection = lambda *a, **k: guarded(None, a[0])

    # Every I/O event Python audits (PEP 578), counted when our code caused it: walking out from the event, a
    # frame of the DAG file or of our package comes before any module being imported. So a library's own
    # import-time work (croniter runs `file`, urllib3 probes IPv6) is not ours; what Airflow does when our
    # code calls it, and what our modules do when they are imported, is.
    OURS = tuple(os.path.abspath(p) + os.sep for p in sys.argv[2:])
    WATCHED = {"open", "os.listdir", "os.scandir", "glob.glob", "socket.connect", "socket.getaddrinfo",
               "socket.gethostbyname", "socket.bind", "urllib.Request", "http.client.connect", "subprocess.Popen",
               "os.system", "os.exec", "os.posix_spawn", "os.fork", "sqlite3.connect", "os.remove", "os.rename",
               "os.mkdir", "os.rmdir", "os.truncate", "os.chmod", "os.link", "os.symlink", "shutil.rmtree"}
    io_events = []
    recording = []
    def ours(frame):
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith("<frozen importlib"):
                return False
            if name.startswith(OURS) or name == os.path.abspath(sys.argv[1]):
                return True
            frame = frame.f_back
        return False
    def audit(event, args):
        if recording and event in WATCHED and ours(sys._getframe(1)):
            io_events.append([event, [os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else a
                                      if isinstance(a, (int, type(None))) else repr(a) for a in args]])
    sys.addaudithook(audit)

    lookups = []
    import airflow.sdk
    from airflow.sdk import Variable
    from airflow.sdk.definitions.connection import Connection
    def refuse(kind):
        def f(*a, **k):
            lookups.append(kind)
            raise RuntimeError(kind + " read at parse time")
        return f
    Variable.get = staticmethod(refuse("Variable"))
    Connection.get = classmethod(lambda cls, *a, **k: refuse("Connection")())
    import botocore.client
    clients = []
    real_init = botocore.client.BaseClient.__init__
    def spy(self, *a, **k):
        clients.append(type(self).__name__)
        return real_init(self, *a, **k)
    botocore.client.BaseClient.__init__ = spy

    import importlib.util
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location("parsed_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    recording.append(True)
    spec.loader.exec_module(module)
    recording.clear()
    print(json.dumps({
        "connects": opened, "lookups": lookups, "clients": clients, "io": io_events,
        "imported": sorted({name.split(".")[0] for name in set(sys.modules) - before}),
    }))
    """
)
# What a parse must not import: the data and ML stack and the emulator run in tasks, never at parse. boto3 and
# botocore are not on the list: the Amazon provider's operator base classes import them (a dag-processor that
# parses any Amazon DAG holds them already).
HEAVY_MODULES = {"pandas", "numpy", "scipy", "sklearn", "xgboost", "matplotlib", "pyarrow", "polars", "moto",
                 "offline_aws", "aiobotocore"}
CATALOG_DIR = PROJECT_DIR / "include" / "models"


def parse_report(dag_file: Path, tmp_path: Path, env: dict | None = None) -> dict:
    """Parse ``dag_file`` in a fresh interpreter under the probe; its report of I/O, lookups and imports."""
    probe = tmp_path / "probe.py"
    probe.write_text(PARSE_PROBE)
    ours = [str(DAGS_DIR), str(PROJECT_DIR / "include" / "sagemaker_retrain")]
    out = subprocess.run([sys.executable, str(probe), str(dag_file), *ours], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_only_the_catalog_is_read(report: dict) -> None:
    reads = [args[0] for event, args in report["io"] if event in ("open", "os.scandir", "os.listdir")]
    assert reads, "the probe saw no read of the catalog: it does not see the parse"
    others = [[event, args] for event, args in report["io"] if event not in ("open", "os.scandir", "os.listdir")]
    assert others == [], f"I/O beyond reading the catalog while parsing: {others}"
    outside = [path for path in reads if not Path(str(path)).is_relative_to(CATALOG_DIR)]
    assert outside == [], f"files read while parsing outside the catalog {CATALOG_DIR}: {outside}"
    writes = [args for event, args in report["io"] if event == "open" and (
        any(c in str(args[1]) for c in "wax+") or (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR)))]
    assert writes == [], f"files opened for writing while parsing: {writes}"


@pytest.mark.parametrize("dag_file", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_parsing_does_no_io_and_no_heavy_imports(dag_file, tmp_path):
    report = parse_report(dag_file, tmp_path)
    assert report["connects"] == []
    assert report["lookups"] == []
    assert report["clients"] == []
    heavy = sorted(HEAVY_MODULES.intersection(report["imported"]))
    assert heavy == [], f"imported while parsing: {heavy}"
    assert_only_the_catalog_is_read(report)


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_param_defaults_validate_and_bounds_refuse(dagbag, dag_id):
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags[dag_id]
    params: ParamsDict = dag.params
    params.validate()  # every default against its own schema
    bad_values = {
        "mini_batch_size": 0,
        "epochs": 0,
        "predictor_type": "linear",
        "training_instance_count": 0,
        "training_instance_type": "m5.large",
        "endpoint_instance_type": "ml m5",
        "mode": "forever",
        "endpoint_name": "bad_name!",
        "validation_fraction": 0.9,
        "test_fraction": 0.0,
        "num_classes": 2,
        "learning_rate": 0,
        "gate_metric": "accuracy",
        "smoke_rows": 0,
        "dataset_uri": "",
        "epochs_type": None,
    }
    bad_values.pop("epochs_type")
    for name, value in bad_values.items():
        if name not in params:  # another algorithm's hyperparameter: not in this model's form
            continue
        param = params.get_param(name)
        with pytest.raises(ParamValidationError):
            param.resolve(value=value)
    if "epochs" in params:
        with pytest.raises(ParamValidationError):
            params.get_param("epochs").resolve(value="ten")


QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/new-data"
# Each model's queue is its own: env <DAG_ID>_WATCH_QUEUE_URL (sagemaker_retrain: SAGEMAKER_RETRAIN_WATCH_QUEUE_URL).
NEW_DATA_ENV = {f"{dag_id.upper()}_WATCH_QUEUE_URL": f"{QUEUE}-{dag_id}" for dag_id in MODEL_DAGS}


def test_with_a_watched_queue_parsing_still_does_no_io(tmp_path, monkeypatch):
    report = parse_report(DAGS_DIR / "sagemaker_retrain.py", tmp_path, env={**os.environ, **NEW_DATA_ENV})
    assert (report["connects"], report["lookups"], report["clients"]) == ([], [], [])
    assert_only_the_catalog_is_read(report)


@pytest.mark.parametrize("cron, expected", [("@weekly", "AssetOrTimeSchedule"), ("", "AssetTriggeredTimetable")])
@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_new_data_or_the_cron_when_a_queue_is_set(monkeypatch, cron, expected, dag_id):
    """The queue's SQS watcher (MessageQueueTrigger → the Amazon provider's SqsSensorTrigger) on an Asset."""
    import importlib.util

    from airflow.serialization.serialized_objects import DagSerialization

    for key, value in {**NEW_DATA_ENV, "SAGEMAKER_RETRAIN_SCHEDULE": cron}.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("dag_with_watcher", DAGS_DIR / "sagemaker_retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, dag_id)
    serialized = DagSerialization.to_dict(dag)["dag"]
    assert expected in json.dumps(serialized["timetable"], default=str)
    assert f"{dag_id}_new_data" in json.dumps(serialized["timetable"], default=str)
    (watcher,) = module._new_data_asset(dag_id).watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger"
    assert kwargs["sqs_queue"] == f"{QUEUE}-{dag_id}"  # its own queue: no model takes another's notifications
    assert kwargs["delete_message_on_reception"] is True and kwargs["max_messages"] == 10


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_without_a_queue_the_catalogs_schedule(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "Asset" not in type(dag.timetable).__name__
    assert dag.timetable.expression == {"@weekly": "0 0 * * 0"}.get(
        SPECS[dag_id].schedule, SPECS[dag_id].schedule)


@pytest.mark.parametrize("dag_id", MODEL_DAGS)
def test_the_endpoint_wait_starts_on_the_triggerer_and_its_pulls_name_map_indexes(dagbag, dag_id):
    wait = dagbag.dags[dag_id].get_task("wait_for_endpoint")
    assert wait.start_from_trigger and wait.start_trigger_args is not None
    pulls = {name: value for name, value in wait.start_trigger_args.trigger_kwargs.items()
             if isinstance(value, str) and "xcom_pull(" in value}
    assert {"endpoint_name", "endpoint_config_name", "deadline", "region_name"} <= set(pulls)
    assert all("map_indexes=" in value for value in pulls.values()), pulls  # docs/upstream.md §9


@pytest.mark.parametrize("setting, expected", [(None, "aws_default"), ("", None), ("aws_team", "aws_team")])
def test_the_aws_connection_is_the_environments_and_empty_means_none(monkeypatch, setting, expected):
    """Empty: no connection (boto3's chain), so no task asks the API server for an undefined ``aws_default``."""
    import importlib.util

    if setting is None:
        monkeypatch.delenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", raising=False)
    else:
        monkeypatch.setenv("SAGEMAKER_RETRAIN_AWS_CONN_ID", setting)
    spec = importlib.util.spec_from_file_location("dag_conn_probe", DAGS_DIR / "sagemaker_retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for dag_id in MODEL_DAGS:
        dag = getattr(module, dag_id)
        aws_tasks = {t.task_id: t.aws_conn_id for t in dag.tasks if hasattr(t, "aws_conn_id")}
        aws_tasks.update({t.task_id: t.partial_kwargs["aws_conn_id"] for t in dag.tasks
                          if "aws_conn_id" in getattr(t, "partial_kwargs", {})})  # mapped: score
        assert {"train", "pin_champion", "score", "deploy", "wait_for_endpoint", "teardown"} <= set(aws_tasks)
        assert set(aws_tasks.values()) == {expected}, aws_tasks
        assert dag.get_task("wait_for_endpoint").start_trigger_args.trigger_kwargs["aws_conn_id"] == expected
