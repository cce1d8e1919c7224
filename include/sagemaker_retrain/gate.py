"""Decide whether a newly trained model may replace the one serving (the champion).

Both numbers come from the same rows: this run's test split scored by each model in batch
transform (see ``scoring``), so the comparison is like with like.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sagemaker_retrain.gate_metrics import GATE_METRICS


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


def serving_model(sagemaker_client, endpoint: dict | None) -> str | None:
    """The model behind an (owned, described) endpoint's serving config: the champion, or None.

    Only an endpoint that is InService has a champion; one mid-update or Failed does not (the
    pipeline waits for a changing endpoint before it pins its champion: ``operators/champion.py``).
    """
    if endpoint is None or endpoint["EndpointStatus"] != "InService":
        return None
    config = sagemaker_client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    return config["ProductionVariants"][0]["ModelName"]


def decide(
    metric: str, candidate: float | None, threshold: float, champion: float | None, champion_model: str | None,
    champion_fault: str | None = None,
) -> GateDecision:
    """Deploy only if the candidate meets the threshold and beats the champion (when there is one).

    ``champion_fault``: the serving model could not be scored on the rows (non-finite answers, a
    wrong count); a challenger that meets the threshold replaces it, and the reason says why.
    """
    lower = GATE_METRICS[metric]
    base = {"metric": metric, "candidate": candidate, "champion": champion, "champion_model": champion_model,
            "threshold": threshold}
    if candidate is None:
        return GateDecision(False, f"the challenger has no {metric} on the test rows", **base)
    better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
    meets = candidate <= threshold if lower else candidate >= threshold
    word = "at most" if lower else "at least"
    if not meets:
        finding = f"; finding: {champion_fault}" if champion_fault else ""
        return GateDecision(False, f"{metric}={candidate:.4f} misses the threshold ({word} {threshold}){finding}",
                            **base)
    if champion_fault:
        return GateDecision(True, f"{metric}={candidate:.4f} meets the threshold, and {champion_fault}: "
                                  "the challenger replaces it", **base)
    if champion is not None and not better(candidate, champion):
        return GateDecision(
            False, f"{metric}={candidate:.4f} does not beat the serving model {champion_model} ({champion:.4f})", **base
        )
    if champion is None:
        return GateDecision(True, f"{metric}={candidate:.4f} meets the threshold; no model serving yet", **base)
    return GateDecision(
        True, f"{metric}={candidate:.4f} beats the serving model {champion_model} ({champion:.4f})", **base
    )
