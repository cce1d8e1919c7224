"""A broken catalog file takes down its own model only, visibly; a new file is a new DAG, nothing else.

The DAG file reads the catalog from env SAGEMAKER_RETRAIN_CATALOG_DIR: here a temporary copy of the
project's catalog, with a broken file (and a new model) added.
"""

from __future__ import annotations

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
    (catalog / "added_model.yaml").write_text(yaml.safe_dump(_entry("added_model", {"tags": ["added"]})))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_RETRAIN_CATALOG_DIR", str(catalog))
        yield DagBag(dag_folder=str(PROJECT_DIR / "dags"))


def test_the_good_models_still_load(bag):
    assert bag.import_errors == {}
    assert {"sagemaker_retrain", "retrain_housing_lstat", "retrain_added_model"} <= set(bag.dags)
    added = bag.dags["retrain_added_model"]
    assert "added" in added.tags and added.params.get_param("endpoint_name").value == "added-model"
    assert added.get_task("deploy").pool == "sagemaker_endpoint_added-model"


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
