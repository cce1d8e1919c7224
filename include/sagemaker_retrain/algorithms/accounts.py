"""AWS's image registry accounts per region, as the SageMaker Python SDK ships them.

Copied from the SDK's ``image_uri_config`` (``sagemaker-core/src/sagemaker/core/image_uri_config``):
``FIRST_PARTY`` is ``knn.json``'s ``versions["1"].registries`` (the same table as
``linear-learner.json``'s in the SDK; the pipeline keeps Linear Learner's historical table in
``images.py``); ``FRAMEWORK`` is ``xgboost.json``'s ``training.versions["1.7-1"].registries``, the same as
``sklearn.json``'s ``training.versions["1.2-1"].registries`` (and both files' inference tables).
A static table: resolving an image costs no network call and can be tested.
"""

from __future__ import annotations

FIRST_PARTY: dict[str, str] = {
    "af-south-1": "455444449433", "ap-east-1": "286214385809", "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446", "ap-northeast-3": "867004704886", "ap-south-1": "991648021394",
    "ap-south-2": "628508329040", "ap-southeast-1": "475088953585", "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "469771592824",
    "ca-west-1": "190319476487", "cn-north-1": "390948362332", "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723", "eu-central-2": "680994064768", "eu-north-1": "669576153137",
    "eu-south-1": "257386234256", "eu-south-2": "104374241257", "eu-west-1": "438346466558",
    "eu-west-2": "644912444149", "eu-west-3": "749696950732", "il-central-1": "898809789911",
    "me-central-1": "272398656194", "me-south-1": "249704162688", "sa-east-1": "855470959533",
    "us-east-1": "382416733822", "us-east-2": "404615174143", "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700", "us-iso-east-1": "490574956308", "us-isob-east-1": "765400339828",
    "us-isof-east-1": "108575199400", "us-isof-south-1": "124985052026", "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}

FRAMEWORK: dict[str, str] = {
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-south-2": "628508329040", "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "341280168497",
    "ca-west-1": "190319476487", "cn-north-1": "450853457545", "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770", "eu-central-2": "680994064768", "eu-north-1": "662702820516",
    "eu-south-1": "978288397137", "eu-south-2": "104374241257", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "il-central-1": "898809789911",
    "me-central-1": "272398656194", "me-south-1": "801668240914", "sa-east-1": "737474898029",
    "us-east-1": "683313688378", "us-east-2": "257758044811", "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902", "us-iso-east-1": "833128469047", "us-isob-east-1": "281123927165",
    "us-isof-east-1": "108575199400", "us-isof-south-1": "124985052026", "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}
