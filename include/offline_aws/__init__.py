"""Offline AWS: S3/Logs/IAM/STS from moto plus our own SageMaker that really trains Linear Learner.

The emulator lets the project's DAGs, tests and CI run with no AWS account. Start it with
``offline-aws`` (or :func:`offline_aws.server.start_emulator` in tests) and point clients at
it with the environment variables it prints.
"""

ACCOUNT_ID = "123456789012"  # moto's default account, so STS GetCallerIdentity agrees with our ARNs
DEFAULT_REGION = "us-east-1"
