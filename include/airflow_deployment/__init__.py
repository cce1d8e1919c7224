"""This project's Airflow deployment configuration: speed-ups each deployment opts into by a setting.

Not part of the provider distribution (``airflow-provider-sagemaker-retrain`` packages only
``sagemaker_retrain``): a team installing the provider into its own Airflow gets none of this.
The project's deployments (docker-compose.yaml, the native deployment of the tests,
``offline_aws.airflow_run``) select each one with Airflow's or the Amazon provider's documented
settings; the README lists them. Each has a unit test that fails when the upstream behaviour it
relies on changes (tests/unit/test_deployment_*.py).

* ``aws_session.SharedModelsSessionFactory`` (``[aws] session_factory``): boto3 sessions share
  botocore's parsed data files. Public boto3/botocore/provider API only.
* ``aws_session.FastCallerSessionFactory`` (``[aws] session_factory``): the above, plus
  ``hook_caller``: the Amazon hooks name their calling operator without ``inspect.stack()``.
  This one replaces two private static methods of the provider's ``AwsGenericHook``.
* ``celery_worker.CELERY_CONFIG`` (``[celery] celery_config_options``): the worker imports the
  provider's modules, parses botocore's models and freezes them out of the GC once, before it
  forks its pool (``worker_warmup``).
"""
