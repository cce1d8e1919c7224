"""The bodies of the retraining DAG's Python tasks, kept out of the DAG file.

The DAG file stays cheap to parse (it imports this module only inside tasks); each function
here takes plain values (params, names, earlier results) and AWS clients made from the Airflow
connection, so the same code runs against AWS and the offline emulator.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from sagemaker_retrain import config, limits, naming
from sagemaker_retrain.images import linear_learner_image
from sagemaker_retrain.settings import DeploymentSettings, SettingsError, load_settings

# Heavier modules (pandas and numpy through data_prep and evaluation, matplotlib, boto3 through the
# Amazon provider's hooks) are imported by the functions that use them, so each task's process
# imports only what that task needs (gate and teardown never load pandas, for instance).

log = logging.getLogger(__name__)


class Clients:
    """boto3 clients from the Amazon provider's hooks (credentials and endpoints from the connection/env).

    Each client is made on first use and then reused: a task pays only for the clients it calls
    (a new SageMaker client parses botocore's multi-megabyte service model: a noticeable cost).
    """

    def __init__(self, settings: DeploymentSettings):
        self.settings = settings

    @cached_property
    def s3(self):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.region).get_conn()

    @cached_property
    def sagemaker(self):
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.region).conn

    @cached_property
    def runtime(self):
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.settings.aws_conn_id, client_type="sagemaker-runtime", region_name=self.settings.region
        ).conn


def endpoint_for(params: dict, slug: str) -> str:
    """Persistent runs share the named endpoint; ephemeral runs get their own, never the serving one."""
    if params["mode"] == "ephemeral":
        return naming.resource_name(params["endpoint_name"], slug)
    return params["endpoint_name"]


def prepare(params: dict, run_id: str, run_after: datetime, project_dir: Path,
            aws_conn_id: str | None = "aws_default") -> dict:
    """Validate and upload the data set, name the run's resources and build the training request.

    Bad input (params, settings, data) raises AirflowFailException: retrying cannot fix it.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_retrain.data_prep import DataValidationError

    try:
        return _prepare(params, run_id, run_after, project_dir, aws_conn_id)
    except (DataValidationError, SettingsError, ValueError) as err:
        raise AirflowFailException(f"{type(err).__name__}: {err}") from err


def _prepare(params: dict, run_id: str, run_after: datetime, project_dir: Path, aws_conn_id: str | None) -> dict:
    from sagemaker_retrain.data_prep import prepare_and_upload

    _check_params(params)
    limits.check_params(params, project_dir)  # admin limits (Variables), before anything is spent
    settings = load_settings(aws_conn_id)
    image = linear_learner_image(settings.region)
    slug = naming.run_slug(run_id, run_after)
    name = naming.resource_name(params["endpoint_name"], slug)
    run_prefix = f"{settings.prefix}/runs/{slug}"
    clients = Clients(settings)
    data = prepare_and_upload(
        params["dataset_uri"], s3_client=clients.s3, bucket=settings.bucket, input_prefix=f"{run_prefix}/input",
        params=params, base_dir=project_dir,
    )
    endpoint = endpoint_for(params, slug)
    training = config.build_training_config(
        job_name=name,
        image=image,
        role_arn=settings.role_arn,
        channel_uris=data.channel_uris,
        output_uri=f"s3://{settings.bucket}/{run_prefix}/output",
        params=params,
        feature_dim=data.feature_dim,
        resource_tags=config.tags(endpoint, run_id),
        content_type=data.content_types,
    )
    log.info("Data set %s: %s rows per split, %s features, uploaded to %s",
             params["dataset_uri"], data.rows, data.feature_dim, data.channel_uris)
    return {
        "settings": settings.as_dict(),
        "slug": slug,
        "run_id": run_id,
        "run_prefix": run_prefix,
        "image": image,
        "names": {"training_job": name, "model": name, "endpoint_config": name, "endpoint": endpoint},
        "data": data.as_dict(),
        "training_config": training,
        # Flat copies for operator arguments (an XComArg can be subscripted only one level deep).
        "endpoint_name": endpoint,
        "endpoint_config_name": name,
        "smoke_features": data.smoke_features,
    }


def _check_params(params: dict) -> None:
    """Cross-field rules a JSON schema cannot state; fail before anything is spent."""
    if params["predictor_type"] == "multiclass_classifier" and not params.get("num_classes"):
        raise ValueError("predictor_type multiclass_classifier needs the num_classes param")
    if params["validation_fraction"] + params["test_fraction"] >= 0.9:
        raise ValueError("validation_fraction + test_fraction must leave at least 10% of rows for training")
    from sagemaker_retrain.params import GATE_METRICS

    if params["gate_metric"] not in GATE_METRICS:
        raise ValueError(f"gate_metric {params['gate_metric']!r} is not one of {sorted(GATE_METRICS)}")


def decide(plan: dict, training: dict, params: dict) -> dict:
    """Compare the candidate with the threshold and the champion; build the deploy request if it wins."""
    from sagemaker_retrain import gate

    settings = DeploymentSettings(**plan["settings"])
    clients = Clients(settings)
    metric = params["gate_metric"]
    candidate = gate.final_metric(training, metric)
    champion_model, champion = gate.champion_metric(clients.sagemaker, plan["names"]["endpoint"], metric)
    decision = gate.decide(metric, candidate, float(params["gate_threshold"]), champion, champion_model)
    log.info("Gate: %s (%s)", "deploy" if decision.deploy else "keep the serving model", decision.reason)
    names = plan["names"]
    resource_tags = config.tags(names["endpoint"], plan["run_id"], training_job=names["training_job"])
    deploy_config = {
        "Model": config.build_model_config(
            model_name=names["model"], image=plan["image"],
            model_data_url=training["ModelArtifacts"]["S3ModelArtifacts"],
            role_arn=settings.role_arn, resource_tags=resource_tags,
        ),
        "EndpointConfig": config.build_endpoint_config_config(
            config_name=names["endpoint_config"], model_name=names["model"], params=params,
            resource_tags=resource_tags,
        ),
        "Endpoint": config.build_endpoint_request(
            endpoint_name=names["endpoint"], config_name=names["endpoint_config"], resource_tags=resource_tags,
        ),
    }
    return {"decision": decision.as_dict(), "deploy_config": deploy_config}


def record(plan: dict, params: dict, outcome: str, **details) -> str:
    """Write this run's history record; return its S3 URI."""
    return _record(Clients(DeploymentSettings(**plan["settings"])), plan, params, outcome, **details)


def _record(clients: Clients, plan: dict, params: dict, outcome: str, **details) -> str:
    from sagemaker_retrain import history

    settings = clients.settings
    entry = {
        "run_id": plan["run_id"],
        "slug": plan["slug"],
        "recorded_at": datetime.now(UTC).isoformat(),
        "outcome": outcome,
        "mode": params["mode"],
        "endpoint": plan["names"]["endpoint"],
        "training_job": plan["names"]["training_job"],
        "model": plan["names"]["model"],
        "dataset_uri": params["dataset_uri"],
        "rows": plan["data"]["rows"],
        **details,
    }
    return history.record_run(clients.s3, settings.bucket, settings.prefix, params["endpoint_name"],
                              plan["slug"], entry)


def evaluate(plan: dict, params: dict, training: dict, gate_result: dict) -> dict:
    """Score the test split through the endpoint; write metrics, predictions and a plot under the run."""
    from sagemaker_retrain import evaluation

    settings = DeploymentSettings(**plan["settings"])
    clients = Clients(settings)
    matrix = evaluation.read_csv_channel(clients.s3, plan["data"]["channel_uris"]["test"])
    y, features = matrix[:, 0], matrix[:, 1:]
    predictions = evaluation.score(clients.runtime, plan["names"]["endpoint"], features,
                                   batch_rows=int(params["eval_batch_rows"]))
    metrics, yhat = evaluation.compute_metrics(params["predictor_type"], y, predictions)
    base = f"{plan['run_prefix']}/evaluation"
    put = clients.s3.put_object
    put(Bucket=settings.bucket, Key=f"{base}/metrics.json", Body=json.dumps(metrics, indent=2).encode())
    put(Bucket=settings.bucket, Key=f"{base}/predictions.csv", Body=evaluation.predictions_csv(y, yhat))
    put(Bucket=settings.bucket, Key=f"{base}/predicted_vs_actual.png",
        Body=evaluation.plot_png(y, yhat, plan["names"]["model"]))
    artifacts = {k: f"s3://{settings.bucket}/{base}/{f}" for k, f in
                 (("metrics", "metrics.json"), ("predictions", "predictions.csv"), ("plot", "predicted_vs_actual.png"))}
    training_metrics = {m["MetricName"]: m["Value"] for m in training.get("FinalMetricDataList", [])}
    outcome = "deployed" if params["mode"] == "persistent" else "evaluated, then deleted (ephemeral)"
    history_uri = _record(clients, plan, params, outcome, endpoint_metrics=metrics,
                          training_metrics=training_metrics, gate=gate_result["decision"], artifacts=artifacts,
                          billable_seconds=training.get("BillableTimeInSeconds"))
    log.info("Endpoint metrics on %d test rows: %s", len(y), metrics)
    return {"metrics": metrics, "rows": len(y), "artifacts": artifacts, "history": history_uri}


def rollback(plan: dict, deployment: dict | None, poll: float) -> str:
    if not deployment:
        return "nothing was deployed by this run"
    from sagemaker_retrain import cleanup

    settings = DeploymentSettings(**plan["settings"])
    return cleanup.rollback(Clients(settings).sagemaker, deployment, poll=poll)


def teardown(plan: dict, params: dict, poll: float) -> list[str]:
    from sagemaker_retrain import cleanup

    settings = DeploymentSettings(**plan["settings"])
    sm = Clients(settings).sagemaker
    names = plan["names"]
    if params["mode"] == "ephemeral":
        removed = cleanup.teardown_ephemeral(
            sm, endpoint_name=names["endpoint"], config_name=names["endpoint_config"], model_name=names["model"],
            job_name=names["training_job"], poll=poll,
        )
    else:
        removed = cleanup.teardown_persistent(sm, endpoint_name=names["endpoint"],
                                              job_name=names["training_job"], poll=poll)
    log.info("Teardown removed: %s", removed or "nothing")
    if any(item.startswith("training job ") for item in removed):
        from airflow.sdk.exceptions import AirflowFailException

        # train ended before its job did (the run or task was marked failed, or train was killed):
        # the run trained nothing, so it must not end "success" just because teardown did.
        raise AirflowFailException(
            f"Training job {names['training_job']} was still running when the run reached teardown: train "
            "ended before its job did (the run or train was marked failed by a person, or train was killed). "
            f"Teardown stopped it and fails the run. Teardown removed: {', '.join(removed)}"
        )
    return removed
