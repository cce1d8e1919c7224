"""Reusable parts of the SageMaker retraining pipeline: an installable Airflow provider package.

Config builders, data preparation, gate, evaluation and teardown are plain functions; the
operator, sensor and trigger follow the Amazon provider's layout (one module per kind).
"""

__version__ = "0.1.0"
