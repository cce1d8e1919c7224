"""Upload part files to S3 with boto3's transfer manager (multipart, parallel) and leave no stale or partial keys."""

from __future__ import annotations

from pathlib import Path

from sagemaker_retrain.data_prep.splitting import SPLITS


def default_transfer_config():
    """Part files (about 16 MB, see ``parts.PART_BYTES``) go up in one PUT each, 8 in flight.

    A single PUT per part costs one request instead of three (create, upload, complete), and
    several part files move at once; a larger file still goes multipart in 16 MB pieces.
    """
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=32 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                          max_concurrency=8, use_threads=True)


def part_key(input_prefix: str, channel: str, path: Path) -> str:
    """``<input_prefix>/<channel>/part-00000.csv`` for the local file ``<channel>-part-00000.csv``."""
    return f"{input_prefix}/{channel}/{path.name.split('-', 1)[1]}"


class PartUploader:
    """Uploads part files as they are finished, with boto3's transfer manager (multipart, parallel).

    ``finish()`` waits for every upload and deletes keys under each channel's prefix that this
    run did not write (a re-run overwrites and leaves no stale part); ``abort()`` cancels and
    deletes what was uploaded, so a data set that fails validation halfway leaves nothing.
    """

    def __init__(self, s3_client, bucket: str, input_prefix: str, transfer_config=None,
                 delete_local: bool = True):
        from boto3.s3.transfer import create_transfer_manager

        self.s3, self.bucket, self.input_prefix = s3_client, bucket, input_prefix
        self.delete_local = delete_local
        self.manager = create_transfer_manager(s3_client, transfer_config or default_transfer_config())
        self.futures: list = []
        self.keys: dict[str, list[str]] = {}

    def submit(self, channel: str, path: Path) -> None:
        key = part_key(self.input_prefix, channel, path)
        self.keys.setdefault(channel, []).append(key)
        subscribers = [_DeleteWhenDone(path)] if self.delete_local else []
        self.futures.append(self.manager.upload(str(path), self.bucket, key, subscribers=subscribers))

    def finish(self, channels=SPLITS) -> dict[str, str]:
        for future in self.futures:
            future.result()
        self.manager.shutdown()
        uris = {}
        for channel in channels:
            prefix = f"{self.input_prefix}/{channel}/"
            written = set(self.keys.get(channel, ()))
            stale = [
                obj["Key"]
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
                if obj["Key"] not in written
            ]
            self._delete(stale)
            uris[channel] = f"s3://{self.bucket}/{prefix}"
        return uris

    def abort(self) -> None:
        try:
            self.manager.shutdown(cancel=True, cancel_msg="data preparation failed")
        except Exception:  # noqa: BLE001 - the original error is the one to raise
            pass
        for future in self.futures:  # s3transfer's own wait stops at the first cancelled transfer
            try:
                future.result()
            except Exception:  # noqa: BLE001 - cancelled or failed: either way it is over
                pass
        self._delete([key for keys in self.keys.values() for key in keys])

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


class _DeleteWhenDone:
    """s3transfer subscriber: remove the local part once it is uploaded (keeps disk use small)."""

    def __init__(self, path: Path):
        self.path = path

    def on_queued(self, future, **kwargs):
        pass

    def on_progress(self, future, bytes_transferred, **kwargs):
        pass

    def on_done(self, future, **kwargs):
        try:
            future.result()
        except Exception:  # noqa: BLE001 - the failure is raised from finish()
            return
        self.path.unlink(missing_ok=True)


def upload_parts(
    s3_client, parts: dict[str, list[Path]], bucket: str, input_prefix: str, transfer_config=None
) -> dict[str, str]:
    """Upload part files under ``input_prefix/<channel>/`` and drop stale keys there (re-runs overwrite)."""
    uploader = PartUploader(s3_client, bucket, input_prefix, transfer_config, delete_local=False)
    try:
        for channel, files in parts.items():
            for path in files:
                uploader.submit(channel, path)
        return uploader.finish(list(parts))
    except BaseException:
        uploader.abort()
        raise
