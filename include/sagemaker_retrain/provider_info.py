"""Airflow provider metadata, found through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-sagemaker-retrain",
        "name": "SageMaker retraining",
        "description": "Retrain, gate, deploy and evaluate SageMaker Linear Learner models.",
        "versions": ["0.1.0"],
        "operators": [
            {
                "integration-name": "Amazon SageMaker",
                "python-modules": ["sagemaker_retrain.operators.training", "sagemaker_retrain.operators.endpoint",
                                   "sagemaker_retrain.operators.restore", "sagemaker_retrain.operators.approval",
                                   "sagemaker_retrain.operators.short_waits"],
            }
        ],
        "sensors": [
            {"integration-name": "Amazon SageMaker", "python-modules": ["sagemaker_retrain.sensors.endpoint"]}
        ],
        "triggers": [
            {"integration-name": "Amazon SageMaker", "python-modules": ["sagemaker_retrain.triggers.endpoint"]}
        ],
    }
