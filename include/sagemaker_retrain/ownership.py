"""Trust a SageMaker resource by the tags it carries, never by its name alone.

Anyone may create an endpoint called ``linear-learner-housing``; only the pipeline tags its
own with the endpoint's name (and the run that made it). Every mutating call on an existing
endpoint, and every re-attach to a training job, first checks these tags, so a foreign resource
is refused before anything changes.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from sagemaker_retrain.config import TAG_ENDPOINT, TAG_PROJECT, TAG_RUN


class ForeignResourceError(RuntimeError):
    """A resource with the pipeline's name does not carry the pipeline's tags: it is not ours."""


def _missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound")


def tags_of(sm, arn: str) -> dict[str, str]:
    """Every tag of ``arn`` (ListTags pages through), as a dict."""
    tags: dict[str, str] = {}
    token = None
    while True:
        kwargs = {"ResourceArn": arn, **({"NextToken": token} if token else {})}
        page = sm.list_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        token = page.get("NextToken")
        if not token:
            return tags


def describe_endpoint(sm, name: str) -> dict | None:
    try:
        return sm.describe_endpoint(EndpointName=name)
    except ClientError as err:
        if _missing(err):
            return None
        raise


def require_owned_endpoint(sm, name: str) -> dict | None:
    """The endpoint's description if it is the pipeline's (or None if absent); raise if it is foreign."""
    description = describe_endpoint(sm, name)
    if description is None:
        return None
    tags = tags_of(sm, description["EndpointArn"])
    if tags.get(TAG_ENDPOINT) != name:
        found = f"{TAG_ENDPOINT}={tags[TAG_ENDPOINT]!r}" if TAG_ENDPOINT in tags else f"no {TAG_ENDPOINT} tag"
        raise ForeignResourceError(
            f"Endpoint {name} exists but was not created by this pipeline: it carries {found} (expected "
            f"{TAG_ENDPOINT}={name!r}). Refusing to change it; pick another endpoint_name, or tag it "
            f"{TAG_ENDPOINT}={name} and {TAG_PROJECT}=sagemaker-retrain if it is yours."
        )
    return description


def job_belongs_to_run(tags: dict[str, str], run_id: str) -> bool:
    """A training/transform job is this run's only if it carries this run's id."""
    return tags.get(TAG_RUN) == run_id[:256]
