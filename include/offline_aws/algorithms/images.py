"""Which algorithm a training or inference image is, per region, as the SageMaker SDK's image_uris resolves it.

``image_uris.retrieve("linear-learner" | "knn", region)`` gives ``<account>.dkr.ecr.<region>.amazonaws.com/<repo>:1``
from the first-party algorithms' registries; ``retrieve("xgboost", region, "1.7-1")`` and
``retrieve("sklearn", region, "1.2-1")`` give ``<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:1.7-1``
and ``.../sagemaker-scikit-learn:1.2-1-cpu-py3`` from the framework registries (one account per region,
the table below, from the SDK's ``image_uri_config/sklearn.json`` and ``xgboost.json``, which agree).
The first-party algorithms' accounts are not checked (any 12-digit account), as before.
"""

from __future__ import annotations

import re

IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[a-z0-9._/-]+):(?P<tag>[\w.-]+)$"
)

FRAMEWORK_ACCOUNTS = {
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-south-2": "628508329040", "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "341280168497",
    "cn-north-1": "450853457545", "cn-northwest-1": "451049120500", "eu-central-1": "492215442770",
    "eu-central-2": "680994064768", "eu-north-1": "662702820516", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "eu-south-1": "978288397137",
    "eu-south-2": "104374241257", "me-south-1": "801668240914", "me-central-1": "272398656194",
    "sa-east-1": "737474898029", "us-east-1": "683313688378", "us-east-2": "257758044811",
    "us-gov-west-1": "414596584902", "us-gov-east-1": "237065988967", "us-west-1": "746614075791",
    "us-west-2": "246618743249", "ca-west-1": "190319476487", "il-central-1": "898809789911",
}

# (repository, tags) -> algorithm name; framework repositories check the account per region.
KNOWN = {
    "linear-learner": (("1", "latest"), "linear-learner", False),
    "knn": (("1", "latest"), "knn", False),
    "sagemaker-xgboost": (("1.7-1",), "xgboost", True),
    "sagemaker-scikit-learn": (("1.2-1-cpu-py3",), "sklearn", True),
}
SUPPORTED = (
    "<account>.dkr.ecr.<region>.amazonaws.com/linear-learner:1, .../knn:1, .../sagemaker-xgboost:1.7-1, "
    ".../sagemaker-scikit-learn:1.2-1-cpu-py3"
)


class UnknownImage(ValueError):
    """An image the emulator does not run; the message names it."""


def algorithm_of(image: str | None) -> str:
    """The algorithm name of an image (``linear-learner``, ``knn``, ``xgboost``, ``sklearn``) or UnknownImage."""
    match = IMAGE.match(image or "")
    if not match:
        raise UnknownImage(f"The image '{image}' is not a valid ECR image URI.")
    repo, tag, account, region = match["repo"], match["tag"], match["account"], match["region"]
    if repo not in KNOWN:
        raise UnknownImage(
            f"The image '{image}' does not exist or is not one the offline emulator runs ({SUPPORTED})."
        )
    tags, name, framework = KNOWN[repo]
    if tag not in tags:
        raise UnknownImage(
            f"The image '{image}' does not exist: tag '{tag}' of {repo} is not one the offline emulator runs "
            f"({', '.join(tags)})."
        )
    expected = FRAMEWORK_ACCOUNTS.get(region)
    if framework and expected is not None and account != expected:
        raise UnknownImage(
            f"The image '{image}' does not exist: {repo} in {region} is served from account {expected}."
        )
    return name
