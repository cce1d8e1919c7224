"""A broken catalog file takes down its own model only, visibly; a new file is a new DAG, nothing else.

The DAG file reads the catalog from env SAGEMAKER_RETRAIN_CATALOG_DIR: here a temporary copy of the
project's catalog, with broken files and a new model added: the README's "Add your model" example,
read from the README, so the worked example there is a file that works.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
MODELS = PROJECT_DIR / "include" / "models"
BROKEN = {
    "bad_yaml": "name: bad_yaml\nowners: [a\n",
    "unknown_algorithm": {"algorithm": {"name": "random-forest"}},
    "missing_target": {"data": {"uri": "include/data/housing.csv"}},
    "unknown_hyperparameter": {"algorithm": {"name": "linear-learner", "hyperparameters": {"max_depth": 3}}},
}
EXPECTED = {
    "bad_yaml": "bad_yaml.yaml: line 3, column 1: not valid YAML",
    "unknown_algorithm": "unknown_algorithm.yaml: algorithm.name: 'random-forest' is not one of linear-learner",
    "missing_target": "missing_target.yaml: data.target: is required",
    "unknown_hyperparameter": "unknown_hyperparameter.yaml: algorithm.hyperparameters.max_depth: unknown field",
}


def readme_example() -> tuple[str, str]:
    """(file name, text) of the README's "Add your model" example: the yaml block under that heading."""
    section = (PROJECT_DIR / "README.md").read_text().split("\n## Add your model\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n# include/models/(\w+\.yaml)\n(.*?)```", section, re.S)
    assert block, "README's 'Add your model' has no ```yaml block starting with '# include/models/<name>.yaml'"
    return block.group(1), block.group(2)


def _entry(name: str, changes: dict) -> dict:
    document = yaml.safe_load((MODELS / "housing_lstat.yaml").read_text())
    document.update(name=name, promotion={**document["promotion"], "endpoint_name": name.replace("_", "-")})
    document.update(changes)
    return document


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    catalog = tmp_path_factory.mktemp("catalog")
    for path in MODELS.glob("*.yaml"):
        shutil.copy(path, catalog / path.name)
    for name, change in BROKEN.items():
        (catalog / f"{name}.yaml").write_text(change if isinstance(change, str) else yaml.safe_dump(_entry(name, change)))
    # Adding a model is adding one file.
    name, text = readme_example()
    (catalog / name).write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_RETRAIN_CATALOG_DIR", str(catalog))
        yield DagBag(dag_folder=str(PROJECT_DIR / "dags"))


def test_the_good_models_still_load(bag):
    assert bag.import_errors == {}
    from sagemaker_retrain.catalog import load_catalog

    shipped = {spec.dag_id for spec in load_catalog(MODELS).specs}
    name, text = readme_example()
    example = yaml.safe_load(text)
    assert shipped | {f"retrain_{example['name']}"} <= set(bag.dags)
    added = bag.dags[f"retrain_{example['name']}"]
    assert set(example["tags"]) <= set(added.tags) and added.owner == ", ".join(example["owners"])
    defaults = {key: added.params.get_param(key).value for key in
                ("dataset_uri", "target_column", "algorithm", "gate_metric", "gate_threshold", "endpoint_name",
                 *example["algorithm"]["hyperparameters"])}
    assert defaults == {"dataset_uri": example["data"]["uri"], "target_column": example["data"]["target"],
                        "algorithm": example["algorithm"]["name"], "gate_metric": example["gate"]["metric"],
                        "gate_threshold": example["gate"]["threshold"],
                        "endpoint_name": example["promotion"]["endpoint_name"],
                        **example["algorithm"]["hyperparameters"]}
    assert added.get_task("deploy").pool == f"sagemaker_endpoint_{example['promotion']['endpoint_name']}"
    assert {o.name for o in added.get_task("publish").outlets} == {f"retrain_{example['name']}_served_model"}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_file_is_a_visible_failing_dag_naming_file_and_field(bag, name):
    from airflow.sdk.exceptions import AirflowFailException

    dag = bag.dags[f"catalog_error_{name}"]
    assert dag.tags == {"catalog-error"} or set(dag.tags) == {"catalog-error"}
    assert EXPECTED[name] in dag.doc_md
    (task,) = dag.tasks
    assert task.retries == 0
    with pytest.raises(AirflowFailException, match=EXPECTED[name].split(": ", 1)[1][:30].replace("[", r"\[")):
        task.python_callable(*task.op_args, **task.op_kwargs)


@pytest.mark.parametrize("dag_id", ["sagemaker_retrain", "retrain_housing_lstat", "catalog_error_bad_yaml"])
def test_a_task_process_builds_only_its_own_dag(dag_id, tmp_path_factory):
    """A task process parses the file under Airflow's parsing context (its DAG id): only that DAG is built;
    without a context (the dag-processor) every DAG of the catalog is."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import get_parsing_context

    catalog = tmp_path_factory.mktemp("catalog-ctx")
    for path in MODELS.glob("*.yaml"):
        shutil.copy(path, catalog / path.name)
    (catalog / "bad_yaml.yaml").write_text(BROKEN["bad_yaml"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_RETRAIN_CATALOG_DIR", str(catalog))
        # what the task runner's parsing context sets (its context manager leaves it set afterwards)
        patch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)
        patch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "prepare")
        assert get_parsing_context().dag_id == dag_id
        own = DagBag(dag_folder=str(PROJECT_DIR / "dags"))
        patch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
        patch.delenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID")
        every = DagBag(dag_folder=str(PROJECT_DIR / "dags"))
    assert set(own.dags) == {dag_id} and own.import_errors == {}
    assert dag_id in every.dags and len(every.dags) == len(list(MODELS.glob("*.yaml"))) + 1
    assert own.dags[dag_id].task_ids == every.dags[dag_id].task_ids
