"""The bodies of the retraining DAG's Python tasks, kept out of the DAG file.

The DAG file stays cheap to parse (it imports this module only inside tasks); each function
here takes plain values (params, names, earlier results) and AWS clients made from the Airflow
connection, so the same code runs against AWS and the offline emulator.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from sagemaker_retrain import algorithms, config, limits, lineage, naming
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


def _fail(err: Exception):
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(f"{type(err).__name__}: {err}")


def prepare(params: dict, run_id: str, run_after: datetime, project_dir: Path,
            aws_conn_id: str | None = "aws_default", clear_number: int = 0, run_type: str = "manual",
            data_events: list[dict] | None = None, retrain: bool = True, watch_prefix: str | None = None,
            model_settings: dict | None = None) -> dict:
    """Validate params, ownership and data; upload the data; name the run's resources.

    ``data_events`` are the extras of the run's triggering ``sagemaker_retrain_new_data`` events (a
    run started by new data trains on the drop they announce); ``run_type`` is the DagRun's
    (``manual``, ``scheduled``, ``asset_triggered``). Bad input (params, settings, data, a foreign
    endpoint) raises AirflowFailException before any SageMaker resource is created: retrying
    cannot fix it. Data the serving model was trained on already ends the run early when Param
    ``on_unchanged_data`` says skip (AirflowSkipException: a successful run that says so).
    ``watch_prefix``: the model's watched prefix (its catalog entry), else Variable ``sagemaker_retrain_watch_prefix``.
    ``model_settings``: the model's ``ModelSpec.run_settings()`` (its Variables prefix and history path).
    """
    from sagemaker_retrain.data_events import DropError
    from sagemaker_retrain.data_prep.errors import DataValidationError
    from sagemaker_retrain.ownership import ForeignResourceError

    try:
        return _prepare(algorithms.run_params(params), run_id, run_after, project_dir, aws_conn_id, clear_number, run_type,
                        data_events or [], retrain, watch_prefix, model_settings)
    except (DataValidationError, SettingsError, ForeignResourceError, DropError, ValueError) as err:
        from sagemaker_retrain import outcome

        outcome.report_refusal(err)  # refused before anything was spent: say so on the run page
        raise _fail(err) from err


def _prepare(params: dict, run_id: str, run_after: datetime, project_dir: Path, aws_conn_id: str | None,
             clear_number: int, run_type: str = "manual", data_events: list[dict] | None = None,
             retrain: bool = True, watch_prefix: str | None = None, model_settings: dict | None = None) -> dict:
    from sagemaker_retrain import history
    from sagemaker_retrain.data_prep.prepare import prepare_and_upload
    from sagemaker_retrain.ownership import require_owned_endpoint

    _check_params(params, project_dir)
    limits.check_params(params, project_dir)  # admin limits (Variables), before anything is spent
    settings = load_settings(aws_conn_id, **(model_settings or {}))
    algorithm = algorithms.of_params(params)
    image = algorithm.image(settings.region)
    clients = Clients(settings)
    generation = run_generation(clients, run_id, run_after, clear_number, retrain)
    slug = naming.run_slug(run_id, run_after, generation)
    name = naming.resource_name(params["endpoint_name"], slug)
    run_prefix = f"{settings.prefix}/runs/{slug}"
    endpoint = endpoint_for(params, slug)
    dataset_uri, sources, trigger = choose_data(params, run_type, data_events or [], clients.s3, project_dir,
                                                watch_prefix)
    data = prepare_and_upload(
        dataset_uri, s3_client=clients.s3, bucket=settings.bucket, input_prefix=f"{run_prefix}/input",
        params=params, base_dir=project_dir, sources=sources,
    )
    served = None
    if params["mode"] == "persistent":
        # Refuse a foreign endpoint before any SageMaker resource is made (deploy checks again before it
        # mutates); after the data checks, so bad data is refused without a single SageMaker call.
        owned = require_owned_endpoint(clients.sagemaker, endpoint)
        if owned is not None and skip_unchanged(params, run_type):
            served = _served_data(clients, endpoint)
    if served and served.get("sha256") == data.source.get("sha256"):
        _skip_unchanged(clients, params, run_id, slug, f"{run_prefix}/input", dataset_uri, data, served, trigger)
    # Models live outside runs/ (whose folders a lifecycle rule may expire): a champion's artifact, and
    # the code that serves it, must outlive its run's inputs, since it serves and is scored again later.
    model_prefix = f"{settings.prefix}/models/{slug}"
    code = upload_code(algorithm, params, project_dir, clients.s3, settings.bucket, model_prefix)
    lineage_tags = {**lineage.training_tags(data.source), **({"code_sha256": code["sha256"]} if code else {})}
    training = config.build_training_config(
        algorithm=algorithm,
        job_name=name,
        image=image,
        role_arn=settings.role_arn,
        channel_uris=data.channel_uris,
        output_uri=f"s3://{settings.bucket}/{model_prefix}",
        params=params,
        feature_dim=data.feature_dim,
        resource_tags=config.tags(endpoint, run_id, **lineage_tags),
        content_type=data.content_types,
        code=code,
        region=settings.region,
        kms_key=settings.kms_key_arn,
    )
    log.info("Data set %s (%s; sha256 %s): %s rows per split, %s features, uploaded to %s",
             dataset_uri, trigger, data.source.get("sha256"), data.rows, data.feature_dim, data.channel_uris)
    # The data set's version for the registry and the history: what identifies the bytes the run read.
    version = {k: v for k, v in data.source.items() if k in ("sha256", "etag", "version_id", "bytes") and v}
    data_dict = {**data.as_dict(), "version": version, "split_seed": params["split_seed"], "trigger": trigger}
    return {
        "dataset_uri": dataset_uri,
        "settings": settings.as_dict(),
        "slug": slug,
        "run_id": run_id,
        # The pass: every clear raises it (a clear also clears prepare); this pass's records carry it.
        "clear_number": clear_number,
        "run_prefix": run_prefix,
        "history_uri": f"s3://{settings.bucket}/"
                       f"{history.record_key(settings.prefix, params['endpoint_name'], slug, settings.history_path)}",
        "image": image,
        "algorithm": algorithm.name,
        "code": code,
        "names": {
            "training_job": name, "model": name, "endpoint_config": name, "endpoint": endpoint,
            "score_challenger": naming.resource_name(params["endpoint_name"], f"{slug}-challenger"),
            "score_champion": naming.resource_name(params["endpoint_name"], f"{slug}-champion"),
        },
        "scoring_uris": {
            role: f"s3://{settings.bucket}/{run_prefix}/scoring/{role}/" for role in ("challenger", "champion")
        },
        "data": data_dict,
        "training_config": training,
        # Flat copies for operator arguments (an XComArg can be subscripted only one level deep).
        "region": settings.region,
        "endpoint_name": endpoint,
        "endpoint_config_name": name,
        "smoke_features": data.smoke_features,
    }


def upload_code(algorithm, params: dict, project_dir: Path, s3, bucket: str, model_prefix: str) -> dict | None:
    """Script mode: package the user's folder as ``sourcedir.tar.gz`` and upload it beside the model.

    Returns ``{"uri", "sha256", "entry_point"}`` (the sha256 of the uploaded bytes joins the data's in
    the lineage), or None for an algorithm that runs no user code.
    """
    packaged = algorithm.package(params, project_dir)
    if packaged is None:
        return None
    blob, sha256, facts = packaged
    key = f"{model_prefix}/source/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=blob, Metadata={"sha256": sha256})
    log.info("Code %s packaged: s3://%s/%s, %d bytes, sha256 %s", facts, bucket, key, len(blob), sha256)
    return {"uri": f"s3://{bucket}/{key}", "sha256": sha256, **facts}


def algorithm_of_model(sm, model_name: str):
    """The algorithm of an existing model, read from what it runs: its container image, or its package's."""
    model = sm.describe_model(ModelName=model_name)
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    image = container.get("Image")
    if not image and container.get("ModelPackageName"):
        package = sm.describe_model_package(ModelPackageName=container["ModelPackageName"])
        image = package["InferenceSpecification"]["Containers"][0]["Image"]
    return algorithms.of_image(image)


def run_generation(clients: Clients, run_id: str, run_after: datetime, clear_number: int,
                   retrain: bool) -> int:
    """The generation of this pass's names, from what SageMaker holds (see ``naming``).

    A run never cleared is generation 0 without asking SageMaker (so bad data is still refused
    before any SageMaker call). A cleared run lists its training jobs by name and keeps those that
    carry its run tag: a clear after ``train`` keeps their generation (the names ``train``'s job,
    the registered package and the deployed config carry), a clear that runs ``train`` again starts
    the next one.
    """
    if not clear_number:
        return 0
    from sagemaker_retrain.ownership import tags_of

    base = naming.run_slug(run_id, run_after)
    sm = clients.sagemaker
    generations = []
    for page in sm.get_paginator("list_training_jobs").paginate(NameContains=base):
        for job in page["TrainingJobSummaries"]:
            generation = naming.generation_of(job["TrainingJobName"], base)
            if generation is None or tags_of(sm, job["TrainingJobArn"]).get(config.TAG_RUN) != run_id[:256]:
                continue
            generations.append(generation)
    chosen = naming.next_generation(generations, retrain)
    log.info("Names of generation %d (this run's training jobs: generations %s; train %s).", chosen,
             sorted(generations) or "none", "runs again" if retrain else "keeps its job")
    return chosen


UNCHANGED_DATA_CHOICES = ("auto", "skip", "retrain")


def skip_unchanged(params: dict, run_type: str) -> bool:
    """Whether data the serving model was trained on (same sha256) ends the run instead of retraining.

    Param ``on_unchanged_data``: ``skip``, ``retrain``, or ``auto`` (the default): skip for runs
    started by new data or by the schedule, retrain when a person triggered the run.
    """
    choice = params.get("on_unchanged_data") or "auto"
    if choice == "auto":
        return run_type in ("asset_triggered", "scheduled")
    return choice == "skip"


def choose_data(params: dict, run_type: str, data_events: list[dict], s3_client,
                project_dir: Path, watch_prefix: str | None = None) -> tuple[str, list[dict] | None, str]:
    """(the data set's label URI, the sources to read or None for the Param's URI, why these).

    A run started by new data reads the drop its events announce; a scheduled run with a watched
    prefix (Variable ``sagemaker_retrain_watch_prefix``) reads the newest drop under it; otherwise,
    the ``dataset_uri`` Param. Every location is checked against the admins' allowed prefixes first,
    and the S3 objects' total size against ``max_dataset_bytes`` before any is read.
    """
    from sagemaker_retrain import data_events as events

    variables = limits.airflow_variables
    watch = events.load_watch(variables)
    if watch_prefix:  # the model's own (catalog), with the deployment's suffix
        watch = events.Watch.parse(watch_prefix, watch.suffix if watch else None)
    max_bytes = limits.limits(variables)["max_dataset_bytes"]

    def allowed(uri: str) -> None:
        limits.check_dataset_uri(uri, project_dir, variables, max_bytes)

    drop = None
    if data_events:
        drop = events.drop_from_events(s3_client, data_events, watch, allowed)
        if drop is None:
            raise ValueError("This run was started by new data, but its events name no new object under the "
                             f"watched prefix ({watch.uri if watch else 'any'}): nothing to train on")
        why = f"new data: {drop.describe()}"
    elif run_type == "scheduled" and watch is not None:
        drop = events.latest_drop(s3_client, watch, allowed)
        why = f"scheduled: newest drop under {watch.uri}: {drop.describe()}" if drop else (
            f"scheduled: nothing under {watch.uri}, so Param dataset_uri")
    else:
        why = "Param dataset_uri"
    limits.check_s3_dataset_size(s3_client, drop.sources if drop else [{"uri": params["dataset_uri"]}], max_bytes)
    if drop is None:
        return params["dataset_uri"], None, why
    if drop.ignored:
        log.info("Also announced, not read (another drop is newer, or outside the watched prefix): %s", drop.ignored)
    return drop.trigger.uri, drop.sources, why


def _served_data(clients: Clients, endpoint: str) -> dict | None:
    """The data behind the model the endpoint serves (its registry and job records), or None."""
    try:
        return lineage.data_behind_endpoint(clients.sagemaker, endpoint)["data"]
    except Exception as err:  # noqa: BLE001 - no answer: the run trains (never skips on a guess)
        log.info("Cannot tell which data trained the model behind %s (%s): training.", endpoint, err)
        return None


def _skip_unchanged(clients: Clients, params: dict, run_id: str, slug: str, input_prefix: str, dataset_uri: str,
                    data, served: dict, trigger: str) -> None:
    """End the run early: the serving model was trained on these very bytes. Recorded, and said on the run page."""
    from airflow.sdk.exceptions import AirflowSkipException

    from sagemaker_retrain import history, outcome

    settings = clients.settings
    s3 = clients.s3
    stale = [{"Key": o["Key"]} for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket, Prefix=f"{input_prefix}/") for o in page.get("Contents", [])]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": stale[start:start + 1000], "Quiet": True})
    sha = data.source.get("sha256")
    message = (f"Skipped: {dataset_uri} has the same sha256 ({sha[:12]}…) as the data the model serving "
               f"{params['endpoint_name']} was trained on ({trigger}); Param on_unchanged_data="
               f"{params.get('on_unchanged_data') or 'auto'}. Set it to retrain to train anyway.")
    history.record_run(s3, settings.bucket, settings.prefix, params["endpoint_name"], slug, {
        "run_id": run_id, "slug": slug, "recorded_at": datetime.now(UTC).isoformat(),
        "outcome": "skipped: unchanged data", "mode": params["mode"], "endpoint": params["endpoint_name"],
        "dataset_uri": dataset_uri, "rows": data.rows, "data_source": data.source, "trigger": trigger,
        "served_data": served, "reason": message,
    }, path=settings.history_path)
    outcome.report_skip(message)
    raise AirflowSkipException(message)


def _check_params(params: dict, project_dir: Path | None = None) -> None:
    """Cross-field rules a JSON schema cannot state; fail before anything is spent, naming both Params.

    The algorithm's own rules (its hyperparameters, required ones included, its training formats,
    script mode's folder) are checked by its strategy.
    """
    from sagemaker_retrain.gate_metrics import GATE_METRICS, METRICS_FOR_PREDICTOR

    algorithms.of_params(params).validate(params, project_dir)
    predictor = params["predictor_type"]
    if predictor == "multiclass_classifier" and not params.get("num_classes"):
        raise ValueError("Param num_classes (Number of classes) is required when Param predictor_type is "
                         "multiclass_classifier: set it to the number of labels (3 or more)")
    if params["validation_fraction"] + params["test_fraction"] >= 0.9:
        raise ValueError(f"Params validation_fraction ({params['validation_fraction']}) + test_fraction "
                         f"({params['test_fraction']}) must leave at least 10% of rows for training")
    if params["gate_metric"] not in GATE_METRICS:
        raise ValueError(f"Param gate_metric {params['gate_metric']!r} is not one of {sorted(GATE_METRICS)}")
    steps = {"canary": 1, "linear": math.ceil(100 / max(int(params.get("linear_step_percent") or 100), 1)),
             "all_at_once": 1}[params.get("deployment_strategy", "all_at_once")]
    needed = steps * int(params.get("bake_seconds", 0)) + int(params.get("termination_wait_seconds", 0))
    if params.get("deployment_timeout_seconds") is not None and needed >= int(params["deployment_timeout_seconds"]):
        raise ValueError(
            f"Param deployment_timeout_seconds ({params['deployment_timeout_seconds']}) must exceed the deployment's "
            f"own length: {steps} bake(s) of Param bake_seconds ({params['bake_seconds']}) plus Param "
            f"termination_wait_seconds ({params['termination_wait_seconds']}) = {needed} s for Param "
            f"deployment_strategy {params['deployment_strategy']!r}"
        )
    suitable = METRICS_FOR_PREDICTOR[predictor]
    if params["gate_metric"] not in suitable:
        raise ValueError(
            f"Param gate_metric {params['gate_metric']!r} does not suit Param predictor_type {predictor!r}: "
            f"choose one of {', '.join(suitable)}"
        )


def _model_tags(plan: dict, training_job: str) -> list[dict]:
    return config.tags(plan["names"]["endpoint"], plan["run_id"], training_job=training_job)


def metrics_uri(plan: dict) -> str:
    """Where the gate writes both models' metrics on this run's test rows (the package's ModelMetrics)."""
    return f"s3://{plan['settings']['bucket']}/{plan['run_prefix']}/evaluation/metrics.json"


def register(plan: dict, training: dict, params: dict, dag_id: str = "sagemaker_retrain") -> dict:
    """Register the trained model: the endpoint's package group (made once, tagged) and a new version.

    The version is ``PendingManualApproval`` until the gate and the approval step decide; its
    metadata carries the run's lineage (run, data set and its version, rows, training job). A retry
    of this task registers no second version (the request's ClientToken is the run's).
    """
    from sagemaker_retrain import registry
    from sagemaker_retrain.ownership import ForeignResourceError

    params = algorithms.run_params(params)  # another algorithm than the DAG's: its section's defaults
    settings = DeploymentSettings(**plan["settings"])
    sm = Clients(settings).sagemaker
    group = registry.group_name(params)
    try:
        registry.ensure_group(sm, group, params["endpoint_name"],
                              config.tags(params["endpoint_name"], plan["run_id"]))
    except ForeignResourceError as err:
        raise _fail(err) from err
    data = plan["data"]
    version = data.get("version") or {}
    lineage = {
        "run-id": plan["run_id"], "dag-id": dag_id, "training-job": training["TrainingJobName"],
        "dataset-uri": plan.get("dataset_uri", params["dataset_uri"]), "dataset-sha256": version.get("sha256"),
        "dataset-etag": version.get("etag"), "dataset-version-id": version.get("version_id"),
        "dataset-bytes": version.get("bytes"), "dataset-parts": len((data.get("source") or {}).get("parts") or []) or None,
        "split-seed": params.get("split_seed"), "run-slug": plan["slug"],
        **{f"rows-{split}": count for split, count in (data.get("rows") or {}).items()},
        "target": params["target_column"], "predictor-type": params["predictor_type"],
        "gate-metric": params["gate_metric"], "gate-decision": "pending",
        "endpoint": plan["names"]["endpoint"], "mode": params["mode"],
        "algorithm": algorithms.get(plan.get("algorithm")).name, "image": plan["image"],
        "code-sha256": (plan.get("code") or {}).get("sha256"), "code-uri": (plan.get("code") or {}).get("uri"),
    }
    request = config.build_model_package_config(
        algorithm=algorithms.get(plan.get("algorithm")), code=plan.get("code"), region=settings.region,
        group_name=group, image=plan["image"], model_data_url=training["ModelArtifacts"]["S3ModelArtifacts"],
        params=params, metrics_uri=metrics_uri(plan), customer_metadata=registry.metadata(lineage),
        client_token=registry.client_token(plan["run_id"], plan["slug"]),
        description=f"Run {plan['run_id']}: training job {training['TrainingJobName']} on "
                    f"{plan.get('dataset_uri', params['dataset_uri'])}",
    )
    arn = sm.create_model_package(**request)["ModelPackageArn"]
    package = registry.summary(sm, arn)
    log.info("Registered %s (version %s of group %s, %s).", arn, package["version"], group, package["approval"])
    return package


def _model_source(model: dict) -> str | None:
    """What a model serves: its model package, or its artifact (a CreateModel request or a DescribeModel answer)."""
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return container.get("ModelPackageName") or container.get("ModelDataUrl")


def challenger_model_request(plan: dict, settings: DeploymentSettings, package: dict | None,
                             model_data_url: str | None = None) -> dict:
    """The CreateModel request of the run's challenger: from its registry package (or its artifact)."""
    names = plan["names"]
    resource_tags = _model_tags(plan, names["training_job"])
    algorithm = algorithms.get(plan.get("algorithm"))
    if package:
        serving = algorithm.container(plan["image"], "", plan.get("code"), settings.region)
        return config.build_model_from_package_config(
            model_name=names["model"], model_package_arn=package["arn"], role_arn=settings.role_arn,
            resource_tags=resource_tags, environment=serving.get("Environment"))
    return config.build_model_config(algorithm=algorithm, model_name=names["model"],
                                     image=plan["image"], model_data_url=model_data_url, role_arn=settings.role_arn,
                                     resource_tags=resource_tags, code=plan.get("code"), region=settings.region)


def stage(plan: dict, training: dict, params: dict, package: dict | None = None,
          champion: dict | None = None) -> list[dict]:
    """Create the challenger's model from its package; build the scoring request of each model.

    Nothing here touches production: the model is new, and the champion (``champion``, pinned by
    the task before: what the endpoint serves, exactly) is only scored. Returns one
    ``{"config": CreateTransformJob request, "region_name"}`` per model, challenger first, for the
    mapped scoring task.
    """
    params = algorithms.run_params(params)  # another algorithm than the DAG's: its section's defaults
    settings = DeploymentSettings(**plan["settings"])
    sm = Clients(settings).sagemaker
    names = plan["names"]
    model_request = challenger_model_request(plan, settings, package,
                                             training["ModelArtifacts"]["S3ModelArtifacts"])
    from botocore.exceptions import ClientError

    try:
        sm.create_model(**model_request)
    except ClientError as err:
        if "already existing" not in str(err):
            raise
        existing, wanted = _model_source(sm.describe_model(ModelName=names["model"])), _model_source(model_request)
        if existing != wanted:
            from sagemaker_retrain.ownership import ForeignResourceError

            raise _fail(ForeignResourceError(
                f"Model {names['model']} exists but serves {existing}, not this run's {wanted}: not this run's "
                "model. Clear the whole run (from prepare) or trigger a new one.")) from err
        log.info("Model %s exists already (an earlier try of this run made it); keeping it.", names["model"])
    champion_model = (champion or {}).get("model")
    test_uri = plan["data"]["channel_uris"]["test"]
    run_tags = config.tags(names["endpoint"], plan["run_id"])

    challenger_algorithm = algorithms.get(plan.get("algorithm"))
    champion_algorithm = None
    if champion_model:
        try:  # the champion is scored in its own algorithm's formats, read from what serves
            champion_algorithm = algorithm_of_model(sm, champion_model)
        except (ValueError, ClientError) as err:
            log.warning("Finding: the serving model %s runs no container the pipeline can score (%s): the gate "
                        "has no champion score.", champion_model, err)

    def transform(role: str, model: str, algorithm) -> dict:
        request = config.build_transform_config(
            algorithm=algorithm, job_name=names[f"score_{role}"], model_name=model, input_uri=test_uri,
            output_uri=plan["scoring_uris"][role], params=params, resource_tags=run_tags,
            kms_key=settings.kms_key_arn,
        )
        try:
            limits.check_transform_config(request)
        except limits.LimitExceeded as err:
            raise _fail(err) from err
        return {"config": request, "region_name": settings.region}

    log.info("Challenger: model %s (package %s). Champion: %s (config %s, package %s).", names["model"],
             (package or {}).get("arn"), champion_model or "none (nothing serves yet)",
             (champion or {}).get("endpoint_config"), ((champion or {}).get("package") or {}).get("arn"))
    log.info("Challenger algorithm: %s; champion algorithm: %s.", challenger_algorithm.title,
             champion_algorithm.title if champion_algorithm else "none")
    return [transform("challenger", names["model"], challenger_algorithm)] + (
        [transform("champion", champion_model, champion_algorithm)] if champion_algorithm else [])


def decide(plan: dict, params: dict, champion: dict | None, package: dict | None = None) -> dict:
    """Score both models on the same test rows, apply the gate, keep the evidence, build the deploy request.

    ``champion`` is what the endpoint served when it was pinned (config, model, package); the deploy
    request names that config, so ``deploy`` refuses an endpoint that no longer serves it. A
    challenger whose predictions are not finite has failed its checks: that fails the run, before
    production is touched. A champion whose predictions are not finite is a finding: the gate's
    reason and the record say so (it is never taken for "no model serving").
    """
    pinned = champion or {}
    champion_model, champion_package = pinned.get("model"), pinned.get("package")
    from botocore.exceptions import ClientError

    from sagemaker_retrain import evaluation, gate, run_facts, scoring

    settings = DeploymentSettings(**plan["settings"])
    clients = Clients(settings)
    metric, predictor = params["gate_metric"], params["predictor_type"]
    test_uri = plan["data"]["channel_uris"]["test"]
    challenger_algorithm = algorithms.get(plan.get("algorithm"))
    try:
        challenger = scoring.score_model(clients.s3, predictor, metric, test_uri, plan["scoring_uris"]["challenger"],
                                         algorithm=challenger_algorithm)
    except (scoring.ScoringError, scoring.SmokeTestError) as err:
        raise _fail(RuntimeError(f"The challenger {plan['names']['model']} failed its checks on the test rows: "
                                 f"{err}")) from err
    champion, champion_fault = None, None
    champion_algorithm = None
    if champion_model:
        try:  # read with the algorithm of the model that made the answers: the one that serves
            champion_algorithm = algorithm_of_model(clients.sagemaker, champion_model)
            champion = scoring.score_model(clients.s3, predictor, metric, test_uri, plan["scoring_uris"]["champion"],
                                           algorithm=champion_algorithm)
        except (scoring.ScoringError, scoring.SmokeTestError, ValueError, ClientError) as err:
            champion_fault = f"the serving model {champion_model} fails its checks on the same rows: {err}"
            log.warning("Finding: %s", champion_fault)
    decision = gate.decide(
        metric, challenger["gate_value"], float(params["gate_threshold"]),
        champion["gate_value"] if champion else None, champion_model, champion_fault=champion_fault,
    )
    log.info("Gate on %d test rows: %s (%s)", challenger["rows"], "promote" if decision.deploy else "keep the champion",
             decision.reason)
    base = f"{plan['run_prefix']}/evaluation"
    put = clients.s3.put_object
    metrics = {"challenger": challenger["metrics"], "champion": champion["metrics"] if champion else None,
               "rows": challenger["rows"], "split_seed": params["split_seed"]}
    put(Bucket=settings.bucket, Key=f"{base}/metrics.json", Body=json.dumps(metrics, indent=2).encode())
    put(Bucket=settings.bucket, Key=f"{base}/predictions.csv",
        Body=evaluation.predictions_csv(challenger["y"], challenger["yhat"]))
    put(Bucket=settings.bucket, Key=f"{base}/predicted_vs_actual.png",
        Body=evaluation.plot_png(challenger["y"], challenger["yhat"], plan["names"]["model"]))
    artifacts = {k: f"s3://{settings.bucket}/{base}/{f}" for k, f in
                 (("metrics", "metrics.json"), ("predictions", "predictions.csv"), ("plot", "predicted_vs_actual.png"))}
    evidence = {
        "decision": decision.as_dict(),
        "scores": {"challenger": challenger["metrics"], "champion": champion["metrics"] if champion else None},
        "rows": {"count": challenger["rows"], "split_seed": params["split_seed"], "test_uri": test_uri,
                 "source": plan["data"].get("source"),
                 "data": {"rows": plan["data"].get("rows"), **(plan["data"].get("version") or {})}},
        "artifacts": artifacts,
        "package": package,
        "champion_package": champion_package,
        "algorithms": {"challenger": challenger_algorithm.name,
                       "champion": champion_algorithm.name if champion_algorithm else None},
    }
    if package:
        from sagemaker_retrain import registry

        registry.annotate(clients.sagemaker, package["arn"], {
            "gate-decision": "promote" if decision.deploy else "keep champion",
            "gate-reason": decision.reason, "gate-threshold": decision.threshold,
            "challenger-score": challenger["gate_value"], "champion-score": champion["gate_value"] if champion else None,
            "champion-package": (champion_package or {}).get("arn"), "champion-model": champion_model,
            "scored-rows": challenger["rows"], "plot": artifacts["plot"],
        })
    if champion_fault:
        evidence["champion_finding"] = champion_fault
    run_facts.record_gate(clients.s3, plan, evidence)  # the run's summary when no history record follows
    deploy = _deploy_config(plan, params, settings, pinned, package) if decision.deploy else None
    return {**evidence, "deploy_config": deploy}


def _deploy_config(plan: dict, params: dict, settings: DeploymentSettings, champion: dict,
                   package: dict | None) -> dict:
    names = plan["names"]
    resource_tags = _model_tags(plan, names["training_job"])
    alarms = config.build_alarm_requests(
        prefix=settings.prefix, endpoint_name=names["endpoint"], latency_ms=params["latency_alarm_ms"],
        resource_tags=config.tags(names["endpoint"], plan["run_id"]),
    ) if params["mode"] == "persistent" else []
    return {
        "EndpointConfig": config.build_endpoint_config_config(
            config_name=names["endpoint_config"], model_name=names["model"], params=params,
            resource_tags=resource_tags, kms_key=settings.kms_key_arn,
        ),
        "Endpoint": config.build_endpoint_request(
            endpoint_name=names["endpoint"], config_name=names["endpoint_config"], resource_tags=resource_tags,
        ),
        "DeploymentConfig": config.build_deployment_config(params, [a["AlarmName"] for a in alarms])
        if alarms else None,
        "Alarms": alarms,
        "MaxWaitSeconds": int(params["deployment_timeout_seconds"]) + 900,
        # What deploy checks before any mutating call: the endpoint still serves the champion the gate
        # compared (None: nothing served), and the package is Approved.
        "Champion": {"EndpointConfigName": champion.get("endpoint_config"), "ModelName": champion.get("model")},
        # Only production needs an Approved package; an ephemeral run's own endpoint is an evaluation.
        "ModelPackageArn": (package or {}).get("arn") if params["mode"] == "persistent" else None,
        # The challenger's model as stage created it: deploy makes it again if a clean-up deleted it (a failed
        # run whose wait_for_endpoint is cleared later deploys again, without running stage again).
        "Model": challenger_model_request(plan, settings, package) if package else None,
    }


def record(plan: dict, params: dict, outcome: str, **details) -> str:
    """Write this run's history record; return its S3 URI."""
    return _record(Clients(DeploymentSettings(**plan["settings"])), plan, params, outcome, **details)


def _record(clients: Clients, plan: dict, params: dict, outcome: str, **details) -> str:
    from sagemaker_retrain import history, run_facts

    settings = clients.settings
    entry = {
        **run_facts.identity(plan),  # the pass that wrote it: the run's summary reads only its own pass's record
        "recorded_at": datetime.now(UTC).isoformat(),
        "outcome": outcome,
        "mode": params["mode"],
        "endpoint": plan["names"]["endpoint"],
        "training_job": plan["names"]["training_job"],
        "model": plan["names"]["model"],
        "dataset_uri": plan.get("dataset_uri", params["dataset_uri"]),
        "rows": plan["data"]["rows"],
        "data_source": {**(plan["data"].get("source") or {}), "split_seed": params.get("split_seed")},
        "trigger": plan["data"].get("trigger"),
        "algorithm": algorithms.get(plan.get("algorithm")).name,
        "code": plan.get("code"),
        **details,
    }
    return history.record_run(clients.s3, settings.bucket, settings.prefix, params["endpoint_name"],
                              plan["slug"], entry, path=settings.history_path)


APPROVAL_VARIABLE = "sagemaker_retrain_require_approval"
MAX_APPROVAL_TIMEOUT_HOURS = 168
NO_APPROVAL_REASON = "policy: no approval required"


def approval_policy(params: dict, model_requires: bool = False) -> dict:
    """Whether promotion waits for a person, resolved at run time: the admins' policy, which a Param may only tighten.

    Variable ``sagemaker_retrain_require_approval`` is the admins' policy: true/yes/1/on/required
    makes every persistent run wait for a person, whatever Param ``require_approval`` says; false/no/
    0/off or unset leaves it to the model and the Param. ``model_requires`` (the catalog entry's
    ``approval.required``) makes this model's runs wait whatever the Variable and the Param say; the
    Param's ``yes`` waits too; ``no`` or ``policy`` lower nothing. A value the policy cannot read fails
    closed (approval required). So a person who may trigger a run can ask for an approval neither the
    admins nor the model require, never skip one they do. Ephemeral runs promote nothing, so they
    never wait (and leave the package's approval as it is).
    """
    hours = max(1, min(int(params.get("approval_timeout_hours") or 24), MAX_APPROVAL_TIMEOUT_HOURS))
    if params["mode"] == "ephemeral":
        return {"required": False, "reason": "ephemeral run: nothing is promoted", "timeout_hours": hours,
                "record": False}
    from airflow.sdk import Variable

    raw = Variable.get(APPROVAL_VARIABLE, default=None)
    word = str(raw if raw is not None else "").strip().lower()
    if word in ("1", "true", "yes", "on", "required"):
        admins, policy = True, f"Variable {APPROVAL_VARIABLE}={raw!r}"
    elif word in ("", "0", "false", "no", "off", "none"):
        admins = False
        policy = f"Variable {APPROVAL_VARIABLE}={raw!r}" if raw is not None else f"Variable {APPROVAL_VARIABLE} unset"
    else:  # fail closed: a policy nobody can read requires approval
        admins, policy = True, f"Variable {APPROVAL_VARIABLE}={raw!r} is not true/false: treated as required"
    choice = params.get("require_approval") or "policy"
    if not admins and model_requires:
        admins, policy = True, f"the model's catalog entry approval.required=true, stricter than {policy}"
    if admins:
        source = policy if choice != "no" else f"{policy}; Param require_approval=no cannot lower it"
    elif choice == "yes":
        source = f"param require_approval=yes, stricter than {policy}"
    else:
        source = policy if choice == "policy" else f"param require_approval={choice}, {policy}"
    required = admins or choice == "yes"
    reason = f"approval required ({source})" if required else f"{NO_APPROVAL_REASON} ({source})"
    return {"required": required, "reason": reason, "timeout_hours": hours, "record": True}


def decide_approval(plan: dict, package: dict | None, approved: bool, description: str, **facts) -> dict:
    """Record the approval decision in the package (Approved/Rejected, who and why); return it."""
    from sagemaker_retrain import registry

    status = registry.APPROVED if approved else registry.REJECTED
    if package:
        sm = Clients(DeploymentSettings(**plan["settings"])).sagemaker
        registry.set_approval(sm, package["arn"], status, description,
                              {"approval": status, **{k.replace("_", "-"): v for k, v in facts.items()}})
    return {"status": status, "description": description, **facts}


def keep_champion(plan: dict, params: dict, evidence: dict) -> str:
    """A challenger that lost at the gate: its package is Rejected (by the gate) and the run recorded."""
    package = evidence.get("package")
    if package and params["mode"] == "persistent":
        decide_approval(plan, package, False, f"gate: {evidence['decision']['reason']}"[:1024], approver="gate")
    return record(plan, params, "kept the champion", gate=evidence["decision"], champion_finding=evidence.get("champion_finding"), scores=evidence["scores"],
                  scored_rows=evidence["rows"], artifacts=evidence["artifacts"], package=_package_ref(package),
                  champion_package=_package_ref(evidence.get("champion_package")),
                  approval={"status": "Rejected", "description": "gate: " + evidence["decision"]["reason"],
                            "approver": "gate"})


def rejected(plan: dict, params: dict, evidence: dict, approval: dict) -> str:
    """A challenger that passed the gate but was rejected (or not answered in time): nothing deployed."""
    return record(plan, params, "rejected at approval", gate=evidence["decision"], champion_finding=evidence.get("champion_finding"), scores=evidence["scores"],
                  scored_rows=evidence["rows"], artifacts=evidence["artifacts"],
                  package=_package_ref(evidence.get("package")),
                  champion_package=_package_ref(evidence.get("champion_package")), approval=approval)


def _package_ref(package: dict | None) -> dict | None:
    if not package:
        return None
    return {k: package.get(k) for k in ("arn", "group", "version")}


def publish(plan: dict, params: dict, evidence: dict, verification: dict, approval: dict | None = None) -> dict:
    """Record the promoted model (persistent) or the evaluated one (ephemeral) after its checks passed."""
    outcome = "promoted" if params["mode"] == "persistent" else "evaluated, then deleted (ephemeral)"
    history_uri = record(plan, params, outcome, gate=evidence["decision"], champion_finding=evidence.get("champion_finding"), scores=evidence["scores"],
                         scored_rows=evidence["rows"], artifacts=evidence["artifacts"],
                         smoke_scores=verification.get("smoke_scores"),
                         package=_package_ref(evidence.get("package")),
                         champion_package=_package_ref(evidence.get("champion_package")), approval=approval)
    verified = mark_verified(plan, verification)
    return {"outcome": outcome, "history": history_uri, "scores": evidence["scores"], "verified": verified,
            "artifacts": evidence["artifacts"], "data": served_data_summary(plan, params)}


def mark_verified(plan: dict, verification: dict) -> str:
    """Tag this run's endpoint config ``verified`` (last step of publish): the fact the undo reads.

    Only the config the sensor saw serving and answering the smoke test is tagged; from then on no
    restore of this run (nor of a later pass of it, after a Clear) switches it back.
    """
    sm = Clients(DeploymentSettings(**plan["settings"])).sagemaker
    name = verification.get("endpoint_config_name") or plan["names"]["endpoint_config"]
    stamp = f"{datetime.now(UTC).isoformat(timespec='seconds')} by {plan['run_id']}"[:256]
    arn = sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": config.TAG_VERIFIED, "Value": stamp}])
    log.info("Endpoint config %s verified: tagged %s=%s", name, config.TAG_VERIFIED, stamp)
    return name


def served_data_summary(plan: dict, params: dict) -> dict:
    """The lineage announced with the served model (its Asset event): what trained it, exactly."""
    source = plan["data"].get("source") or {}
    return {"uri": plan.get("dataset_uri", params["dataset_uri"]), "sha256": source.get("sha256"),
            "bytes": source.get("bytes"), "etag": source.get("etag"), "version_id": source.get("version_id"),
            "parts": [{k: p.get(k) for k in ("uri", "sha256", "version_id")} for p in source.get("parts") or []],
            "rows": plan["data"].get("rows"), "split_seed": params.get("split_seed"),
            "trigger": plan["data"].get("trigger"), "run_id": plan["run_id"],
            "training_job": plan["names"]["training_job"]}
