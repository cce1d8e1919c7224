"""Airflow UI plugin: the model history page (Browse → Model history)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from sagemaker_retrain.history_view import create_app


class ModelHistoryPlugin(AirflowPlugin):
    name = "sagemaker_retrain_model_history"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/model-history", "name": "Model history"}]
    external_views = [
        {
            "name": "Model history",
            "href": "/model-history/",
            "destination": "nav",
            "category": "browse",
            "url_route": "model-history",
        }
    ]
