"""Open the data set: a local path or an ``s3://`` object, as a binary stream; a missing one is a clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from sagemaker_retrain.data_prep.errors import DataValidationError


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def open_source(uri: str, s3_client=None, base_dir: Path | None = None, metadata: dict | None = None,
                version_id: str | None = None) -> IO[bytes]:
    """Open a local path or an s3:// object (``version_id``: that version) for streaming; a missing
    source is a clear error.

    ``metadata``, if given, receives the S3 object's ``ETag`` and ``VersionId`` (lineage).
    """
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        try:
            response = s3_client.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
            if metadata is not None:
                metadata.update({k: response.get(k) for k in ("ETag", "VersionId")})
            return response["Body"]
        except Exception as err:  # botocore ClientError and friends
            raise DataValidationError(f"Cannot read data set {uri}: {err}") from err
    path = Path(uri)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise DataValidationError(f"Data set {uri!r} not found (looked at {path})")
    if not os.access(path, os.R_OK):
        raise DataValidationError(f"Data set {path} is not readable")
    return path.open("rb")
