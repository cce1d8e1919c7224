"""Who may read which model's history: Airflow's auth manager, asked per model's DAG as Airflow's own routes ask.

A model's history shows its runs and their approvals, so a user sees a model only when the auth
manager lets them read that DAG's runs (``DagAccessEntity.RUN``) and its human-in-the-loop details
(``DagAccessEntity.HITL_DETAIL``), the checks behind ``/api/v2/dags/{dag_id}/dagRuns`` and
``…/hitlDetails``; the DAG's team (multi-team deployments) is looked up as those routes look it up.
Imported by the API server only (the plugin's routes), never while a DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sagemaker_retrain.catalog import ModelSpec, catalog_dir, load_catalog

DEFAULT_CATALOG = Path(__file__).resolve().parents[1] / "models"


def catalog_models() -> list[ModelSpec]:
    """The models of the catalog the DAG factory reads (env ``SAGEMAKER_RETRAIN_CATALOG_DIR`` else ``include/models``)."""
    return list(load_catalog(catalog_dir(DEFAULT_CATALOG)).specs)


def _team_names(dag_ids: list[str]) -> dict[str, str | None]:
    """Each DAG's team, as Airflow's routes find it (only multi-team deployments have any)."""
    from airflow.models.dag import DagModel
    from airflow.sdk import conf

    if not dag_ids or not conf.getboolean("core", "multi_team", fallback=False):
        return {}
    return DagModel.get_dag_id_to_team_name_mapping(dag_ids)


def readable(models: Iterable[ModelSpec], user) -> list[ModelSpec]:
    """The models whose DAG runs and approvals ``user`` may read, in catalog order."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    models = list(models)
    teams = _team_names([m.dag_id for m in models])
    manager = get_auth_manager()
    return [
        model for model in models
        if all(manager.is_authorized_dag(method="GET", access_entity=entity, user=user,
                                         details=DagDetails(id=model.dag_id, team_name=teams.get(model.dag_id)))
               for entity in (DagAccessEntity.RUN, DagAccessEntity.HITL_DETAIL))
    ]
