"""Linear Learner's training/inference image for a region.

A static table of AWS's published registry accounts (the same table the SageMaker Python SDK
ships), so resolving the image costs no network call and can be tested.
"""

from __future__ import annotations

LINEAR_LEARNER_ACCOUNTS: dict[str, str] = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}


def linear_learner_image(region: str, tag: str = "1") -> str:
    """Return the ECR URI of Linear Learner in ``region``; raise with the known regions if absent."""
    try:
        account = LINEAR_LEARNER_ACCOUNTS[region]
    except KeyError:
        known = ", ".join(sorted(LINEAR_LEARNER_ACCOUNTS))
        raise ValueError(f"Linear Learner is not published in region {region!r}; known regions: {known}") from None
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if region.startswith("us-iso-"):
        domain = "c2s.ic.gov"
    return f"{account}.dkr.ecr.{region}.{domain}/linear-learner:{tag}"
