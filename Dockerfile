# The image of every service in docker-compose.yaml: Airflow 3.3.2 with the pinned requirements
# and this project's two distributions: the provider (sagemaker_retrain) and the offline AWS emulator
# (offline_aws, include/offline_aws/pyproject.toml). include/airflow_deployment (the deployment's opt-in
# speed-ups, not a distribution) is found through PYTHONPATH.
#
# requirements.txt is compiled for Python 3.11 (see `make lock`), hence the -python3.11 tag of
# apache/airflow:3.3.2. The package is installed for its entry points (the provider's
# provider_info, the `offline-aws` command); include/ is also copied to /opt/airflow/include and
# put first on PYTHONPATH, so the code and data under include/ (mounted by docker-compose.yaml
# for development) are what runs, and the DAG finds include/data/ next to dags/.
FROM apache/airflow:3.3.2-python3.11

ENV PYTHONPATH=/opt/airflow/include

COPY --chown=airflow:0 requirements.txt /tmp/sagemaker-retrain/requirements.txt
# --require-hashes: every distribution is checked against the lock's sha256 (the lock pins
# apache-airflow==3.3.2 itself, so pip keeps the image's Airflow).
RUN pip install --no-cache-dir --require-hashes -r /tmp/sagemaker-retrain/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /tmp/sagemaker-retrain/
COPY --chown=airflow:0 include /tmp/sagemaker-retrain/include
# --no-build-isolation: built with the lock's (hash-checked) setuptools; nothing unpinned is downloaded.
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/sagemaker-retrain /tmp/sagemaker-retrain/include/offline_aws \
    && rm -rf /tmp/sagemaker-retrain

COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
