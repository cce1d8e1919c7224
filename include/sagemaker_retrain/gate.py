"""Decide whether a newly trained model may replace the one serving (the champion)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_TRAINING_JOB
from sagemaker_retrain.params import GATE_METRICS


@dataclass
class GateDecision:
    deploy: bool
    reason: str
    metric: str
    candidate: float | None
    champion: float | None
    champion_model: str | None
    threshold: float

    def as_dict(self) -> dict:
        return asdict(self)


def final_metric(description: dict, name: str) -> float | None:
    """A metric from a DescribeTrainingJob answer's FinalMetricDataList, or None."""
    for metric in description.get("FinalMetricDataList", []):
        if metric["MetricName"] == name:
            return float(metric["Value"])
    return None


def champion_metric(sagemaker_client, endpoint_name: str, metric: str) -> tuple[str | None, float | None]:
    """(model name, metric) of the model the endpoint serves now; (None, None) without an endpoint.

    The serving model carries the tag of the training job that made it, whose final metrics are
    kept by SageMaker, so no extra store is needed.
    """
    try:
        endpoint = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ValidationException":
            return None, None
        raise
    if endpoint["EndpointStatus"] not in ("InService", "Updating"):
        return None, None
    config = sagemaker_client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    try:
        model = sagemaker_client.describe_model(ModelName=model_name)
    except ClientError:
        return model_name, None
    tags = sagemaker_client.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    job = next((t["Value"] for t in tags if t["Key"] == TAG_TRAINING_JOB), None)
    if job is None:
        return model_name, None
    return model_name, final_metric(sagemaker_client.describe_training_job(TrainingJobName=job), metric)


def decide(
    metric: str, candidate: float | None, threshold: float, champion: float | None, champion_model: str | None
) -> GateDecision:
    """Deploy only if the candidate meets the threshold and beats the champion (when there is one)."""
    lower = GATE_METRICS[metric]
    base = {"metric": metric, "candidate": candidate, "champion": champion, "champion_model": champion_model,
            "threshold": threshold}
    if candidate is None:
        return GateDecision(False, f"training job reported no {metric}", **base)
    better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
    meets = candidate <= threshold if lower else candidate >= threshold
    word = "at most" if lower else "at least"
    if not meets:
        return GateDecision(False, f"{metric}={candidate:.4f} misses the threshold ({word} {threshold})", **base)
    if champion is not None and not better(candidate, champion):
        return GateDecision(
            False, f"{metric}={candidate:.4f} does not beat the serving model {champion_model} ({champion:.4f})", **base
        )
    if champion is None:
        return GateDecision(True, f"{metric}={candidate:.4f} meets the threshold; no model serving yet", **base)
    return GateDecision(
        True, f"{metric}={candidate:.4f} beats the serving model {champion_model} ({champion:.4f})", **base
    )
