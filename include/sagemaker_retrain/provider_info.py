"""Airflow provider metadata, found through the ``apache_airflow_provider`` entry point.

Kept true by tests/unit/test_provider_info.py: every module and class named here exists, every
operator/sensor/trigger module of the package is listed, and each config option is read.
"""

from __future__ import annotations

from sagemaker_retrain import __version__

INTEGRATION = "SageMaker Retraining"


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-sagemaker-retrain",
        "name": "SageMaker Retraining",
        "description": "Retrain, gate, register, deploy and check Amazon SageMaker models (Linear Learner, "
                       "XGBoost, k-NN, scikit-learn script mode) with the Amazon provider's hooks and operators.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/sagemaker/latest/dg/whatis.html",
                # The how-to pages (docs/provider/, examples included from the tested DAG).
                "how-to-guide": [f"/docs/provider/{page}.md" for page in (
                    "training", "champion", "scoring", "approval", "deploy", "endpoint_sensor", "teardowns")],
                "tags": ["aws", "ml"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "sagemaker_retrain.operators.approval",
                    "sagemaker_retrain.operators.champion",
                    "sagemaker_retrain.operators.endpoint",
                    "sagemaker_retrain.operators.restore",
                    "sagemaker_retrain.operators.short_waits",
                    "sagemaker_retrain.operators.training",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["sagemaker_retrain.sensors.endpoint"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["sagemaker_retrain.triggers.endpoint"]}],
        "extra-links": [
            "sagemaker_retrain.links.SageMakerTrainingJobLink",
            "sagemaker_retrain.links.SageMakerEndpointLink",
            "sagemaker_retrain.links.SageMakerModelPackageLink",
        ],
        "config": {
            "sagemaker_retrain": {
                "description": "Settings of the SageMaker retraining provider.",
                "options": {
                    "aws_conn_id": {
                        "description": "AWS connection of the model history page (Browse -> Model history). "
                                       "Empty: env SAGEMAKER_RETRAIN_AWS_CONN_ID (set empty: no connection, "
                                       "boto3's own chain), else aws_default.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": "",
                    },
                    "alert_conn_id": {
                        "description": "SMTP connection of the failure and deadline mails. "
                                       "Empty: env SAGEMAKER_RETRAIN_ALERT_CONN_ID, else smtp_default.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "smtp_default",
                        "default": "",
                    },
                },
            }
        },
    }
