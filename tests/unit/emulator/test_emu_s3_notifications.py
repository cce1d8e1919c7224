"""S3 event notifications to SQS on the emulator's wire: moto delivers them, with AWS's fields added.

Through the server (boto3 → one port), as Airflow's watcher sees them: prefix/suffix filter rules,
``s3:TestEvent`` on configuration, URL-encoded keys, and ``versionId`` from a versioned bucket,
parsed by the provider's ``data_events`` into the objects a run would train on.
"""

from __future__ import annotations

import json

import boto3
import pytest

from offline_aws.server import start_emulator
from sagemaker_retrain import data_events

BUCKET = "notified-bucket"
PREFIX = "sagemaker-retrain/incoming/"


@pytest.fixture(scope="module")
def clients():
    emu = start_emulator(time_scale=0)
    kwargs = dict(endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
    s3, sqs = boto3.client("s3", **kwargs), boto3.client("sqs", **kwargs)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    queue = sqs.create_queue(QueueName="new-data")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Id": f"new-data{suffix}", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
              "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX},
                                                 {"Name": "suffix", "Value": suffix}]}}}
             for suffix in (".csv", data_events.MANIFEST_SUFFIX)]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": rules})
    yield s3, sqs, queue
    emu.stop()


def _drain(sqs, queue) -> list[dict]:
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return messages
        messages += got
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in got])


def test_configuring_the_notification_sends_a_test_event_that_names_no_object(clients):
    s3, sqs, queue = clients
    bodies = [json.loads(m["Body"]) for m in _drain(sqs, queue)]
    assert any(b.get("Event") == "s3:TestEvent" for b in bodies) or bodies == []
    assert data_events.objects_from_messages([{"Body": json.dumps(b)} for b in bodies]) == []


def test_only_objects_under_the_prefix_with_the_suffix_are_notified_in_aws_format(clients):
    s3, sqs, queue = clients
    _drain(sqs, queue)
    put = s3.put_object(Bucket=BUCKET, Key=PREFIX + "2026 05/data set.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=BUCKET, Key="sagemaker-retrain/elsewhere/x.csv", Body=b"a,b\n1,2\n")  # outside the prefix
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "notes.txt", Body=b"hello")  # wrong suffix
    messages = _drain(sqs, queue)
    assert len(messages) == 1
    record = json.loads(messages[0]["Body"])["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["object"]["key"] == "sagemaker-retrain/incoming/2026+05/data+set.csv"  # URL-encoded
    assert record["s3"]["object"]["versionId"] == put["VersionId"]
    assert record["s3"]["object"]["sequencer"] and record["userIdentity"]["principalId"]
    assert record["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    (obj,) = data_events.objects_from_messages(messages)
    assert (obj.bucket, obj.key, obj.version_id) == (BUCKET, PREFIX + "2026 05/data set.csv", put["VersionId"])


def test_a_manifest_after_its_parts_is_one_notification_naming_every_part(clients):
    s3, sqs, queue = clients
    _drain(sqs, queue)
    parts = [f"sagemaker-retrain/staging/drop-1/part-{i}.csv" for i in range(3)]
    for i, key in enumerate(parts):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"a,b\n{i},{i + 1}\n".encode())
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "drop-1.manifest.json",
                  Body=json.dumps({"parts": [f"s3://{BUCKET}/{k}" for k in parts]}).encode())
    messages = _drain(sqs, queue)
    assert len(messages) == 1
    extra = {"from_trigger": True, "payload": {"status": "success", "message_batch": messages}}
    drop = data_events.drop_from_events(s3, [extra], data_events.Watch.parse(f"s3://{BUCKET}/{PREFIX}"))
    assert drop.kind == "manifest"
    assert [s["uri"] for s in drop.sources] == [f"s3://{BUCKET}/{k}" for k in parts]


def test_versioned_bucket_returns_the_version_read(clients):
    s3, _, _ = clients
    first = s3.put_object(Bucket=BUCKET, Key="v.csv", Body=b"1")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="v.csv", Body=b"2")["VersionId"]
    assert first != second
    old = s3.get_object(Bucket=BUCKET, Key="v.csv", VersionId=first)
    assert (old["VersionId"], old["Body"].read()) == (first, b"1")
