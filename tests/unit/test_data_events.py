"""New data: S3 notifications → the drop a run trains on; multi-part drops read as one CSV; the skip rule."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from sagemaker_retrain import data_events, pipeline
from sagemaker_retrain.data_events import MANIFEST_SUFFIX, DropError, S3Object, Watch
from sagemaker_retrain.data_prep.drop import ConcatenatedParts
from sagemaker_retrain.data_prep.errors import DataValidationError
from sagemaker_retrain.data_prep.prepare import prepare_and_upload

BUCKET = "drops"
WATCH = Watch.parse(f"s3://{BUCKET}/incoming/")


def s3_event(key: str, *, bucket: str = BUCKET, version: str | None = "v1", time: str = "2026-05-01T10:00:00.000Z",
             name: str = "ObjectCreated:Put") -> dict:
    obj = {"key": key, "size": 10, "eTag": "abc", "sequencer": "0A"}
    if version:
        obj["versionId"] = version
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name, "eventTime": time,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj}}


def message(*records: dict) -> dict:
    return {"MessageId": "m", "ReceiptHandle": "r", "Body": json.dumps({"Records": list(records)})}


def asset_extra(*messages: dict) -> dict:
    return {"from_trigger": True, "payload": {"status": "success", "message_batch": list(messages)}}


# --- parsing ---------------------------------------------------------------------------------------
def test_objects_from_messages_decodes_keys_and_keeps_the_version():
    (obj,) = data_events.objects_from_messages([message(s3_event("incoming/May+2026/a%3Db.csv"))])
    assert obj == S3Object(BUCKET, "incoming/May 2026/a=b.csv", "v1", "abc", 10, "2026-05-01T10:00:00.000Z", "0A")
    assert obj.uri == f"s3://{BUCKET}/incoming/May 2026/a=b.csv"


def test_test_events_removals_garbage_and_sns_envelopes():
    test_event = {"Body": json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})}
    removed = message(s3_event("incoming/a.csv", name="ObjectRemoved:Delete"))
    garbage = {"Body": "not json"}
    sns = {"Body": json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [s3_event("incoming/b.csv")]})})}
    objects = data_events.objects_from_messages([test_event, removed, garbage, sns])
    assert [o.key for o in objects] == ["incoming/b.csv"]


def test_messages_from_asset_events_reads_every_batch():
    extras = [asset_extra(message(s3_event("incoming/a.csv"))), None, {"payload": "odd"},
              asset_extra(message(s3_event("incoming/b.csv")))]
    assert len(data_events.messages_from_asset_events(extras)) == 2


def test_watch_covers_only_its_prefix_and_suffixes():
    assert WATCH.covers(S3Object(BUCKET, "incoming/x/a.csv"))
    assert WATCH.covers(S3Object(BUCKET, "incoming/drop" + MANIFEST_SUFFIX))
    assert not WATCH.covers(S3Object(BUCKET, "incoming/a.txt"))
    assert not WATCH.covers(S3Object(BUCKET, "staging/a.csv"))
    assert not WATCH.covers(S3Object("other", "incoming/a.csv"))
    assert Watch.parse("s3://b/p", ".tsv").covers(S3Object("b", "p/x.tsv"))
    with pytest.raises(ValueError, match="sagemaker_retrain_watch_prefix"):
        Watch.parse("/local/dir")


def test_load_watch_from_variables():
    assert data_events.load_watch(lambda name: None) is None
    watch = data_events.load_watch({"sagemaker_retrain_watch_prefix": f"s3://{BUCKET}/incoming",
                                    "sagemaker_retrain_watch_suffix": ".CSV"}.get)
    assert watch == Watch(BUCKET, "incoming/", ".CSV")


# --- drops -----------------------------------------------------------------------------------------
def test_one_object_drop_is_pinned_to_its_version(s3):
    extra = asset_extra(message(s3_event("incoming/a.csv", version="v7")))
    drop = data_events.drop_from_events(s3, [extra], WATCH)
    assert drop.kind == "object"
    assert drop.sources == [{"uri": f"s3://{BUCKET}/incoming/a.csv", "version_id": "v7"}]


def test_the_newest_drop_wins_and_the_rest_are_reported(s3):
    extra = asset_extra(message(s3_event("incoming/new.csv", time="2026-05-02T00:00:00.000Z"),
                                s3_event("incoming/old.csv", time="2026-05-01T00:00:00.000Z")),
                        message(s3_event("staging/outside.csv", time="2026-05-03T00:00:00.000Z")))
    drop = data_events.drop_from_events(s3, [extra], WATCH)
    assert drop.trigger.key == "incoming/new.csv"
    assert set(drop.ignored) == {f"s3://{BUCKET}/staging/outside.csv", f"s3://{BUCKET}/incoming/old.csv"}


def test_events_outside_the_watch_give_no_drop(s3):
    extra = asset_extra(message(s3_event("staging/a.csv"), s3_event("incoming/a.txt")))
    assert data_events.drop_from_events(s3, [extra], WATCH) is None
    assert data_events.drop_from_events(s3, [], WATCH) is None


def test_manifest_names_parts_absolute_or_relative(s3):
    s3.put_object(Bucket=BUCKET, Key="incoming/d1" + MANIFEST_SUFFIX,
                  Body=json.dumps({"parts": ["s3://drops/staging/p0.csv", "parts/p1.csv"]}).encode())
    drop = data_events.drop_from_events(s3, [asset_extra(message(s3_event("incoming/d1" + MANIFEST_SUFFIX,
                                                                          version=None)))], WATCH)
    assert drop.kind == "manifest"
    assert [s["uri"] for s in drop.sources] == ["s3://drops/staging/p0.csv", "s3://drops/incoming/parts/p1.csv"]


@pytest.mark.parametrize("body, expected", [
    (b"not json", "not JSON"),
    (b'{"parts": []}', "at least one part"),
    (b'{"files": ["a"]}', "at least one part"),
    (b'{"parts": ["a.csv", "a.csv"]}', "twice"),
    (b'{"parts": ["x' + MANIFEST_SUFFIX.encode() + b'"]}', "another manifest"),
])
def test_bad_manifests_are_named(s3, body, expected):
    s3.put_object(Bucket=BUCKET, Key="incoming/bad" + MANIFEST_SUFFIX, Body=body)
    with pytest.raises(DropError, match=expected):
        data_events.drop_of(s3, S3Object(BUCKET, "incoming/bad" + MANIFEST_SUFFIX))


def test_a_refused_location_is_refused_before_the_manifest_is_read(s3):
    reads = []

    def allowed(uri):
        reads.append(uri)
        raise ValueError(f"{uri} not allowed")

    with pytest.raises(ValueError, match="not allowed"):
        data_events.drop_of(s3, S3Object(BUCKET, "incoming/missing" + MANIFEST_SUFFIX), allowed)
    assert reads == [f"s3://{BUCKET}/incoming/missing{MANIFEST_SUFFIX}"]


def test_latest_drop_under_the_prefix(s3):
    assert data_events.latest_drop(s3, WATCH) is None
    for key in ("incoming/a.csv", "incoming/notes.txt", "staging/z.csv"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"a,b\n1,2\n")
    assert data_events.latest_drop(s3, WATCH).trigger.key == "incoming/a.csv"


# --- multi-part drops read as one CSV --------------------------------------------------------------
def table_csv(rows: int, seed: int) -> bytes:
    values = np.random.default_rng(seed).normal(size=(rows, 3)).round(4)
    return b"a,b,y\n" + "".join(",".join(map(str, r)) + "\n" for r in values).encode()


def test_parts_are_one_table_with_one_header_and_their_own_digests():
    parts = {"p0": table_csv(5, 0), "p1": table_csv(4, 1).rstrip(b"\n"), "p2": table_csv(3, 2)}
    reader = ConcatenatedParts([{"uri": k} for k in parts], lambda source, meta: io.BytesIO(parts[source["uri"]]))
    out = b"".join(iter(lambda: reader.read(7), b""))
    assert out.count(b"a,b,y") == 1 and len(out.strip().split(b"\n")) == 1 + 5 + 4 + 3
    assert reader.sha256 == hashlib.sha256(b"".join(parts.values())).hexdigest()  # `cat p0 p1 p2 | sha256sum`
    assert [p["sha256"] for p in reader.parts] == [hashlib.sha256(v).hexdigest() for v in parts.values()]


def test_a_part_with_another_header_is_refused_by_name():
    parts = {"p0": table_csv(5, 0), "p1": b"a,y,b\n1,2,3\n"}
    reader = ConcatenatedParts([{"uri": k} for k in parts], lambda source, meta: io.BytesIO(parts[source["uri"]]))
    with pytest.raises(DataValidationError, match="Part p1 .* another header"):
        while reader.read(1024):
            pass


def test_prepare_and_upload_reads_every_part_at_its_version(s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    bodies = [table_csv(40, i) for i in range(3)]
    versions = [s3.put_object(Bucket=BUCKET, Key=f"staging/p{i}.csv", Body=b)["VersionId"] for i, b in enumerate(bodies)]
    s3.put_object(Bucket=BUCKET, Key="staging/p0.csv", Body=b"overwritten later,x\n")  # a newer version, not read
    sources = [{"uri": f"s3://{BUCKET}/staging/p{i}.csv", "version_id": v} for i, v in enumerate(versions)]
    params = {"target_column": "y", "predictor_type": "regressor", "validation_fraction": 0.1,
              "test_fraction": 0.1, "split_seed": 42, "smoke_rows": 3, "num_classes": None}
    prepared = prepare_and_upload("s3://drops/incoming/d.manifest.json", s3_client=s3, bucket=BUCKET,
                                  input_prefix="runs/r/input", params=params, sources=sources)
    assert sum(prepared.rows.values()) == 120
    assert prepared.source["sha256"] == hashlib.sha256(b"".join(bodies)).hexdigest()
    assert [p["version_id"] for p in prepared.source["parts"]] == versions
    assert prepared.source["uri"] == "s3://drops/incoming/d.manifest.json"


# --- whether unchanged data skips --------------------------------------------------------------------
@pytest.mark.parametrize("choice, run_type, skip", [
    ("auto", "asset_triggered", True), ("auto", "scheduled", True), ("auto", "manual", False),
    ("skip", "manual", True), ("retrain", "asset_triggered", False), (None, "scheduled", True),
])
def test_skip_unchanged(choice, run_type, skip):
    assert pipeline.skip_unchanged({"on_unchanged_data": choice}, run_type) is skip


# --- which data a run reads ------------------------------------------------------------------------
@pytest.fixture
def variables(monkeypatch):
    values = {"sagemaker_retrain_bucket": BUCKET, "sagemaker_retrain_watch_prefix": f"s3://{BUCKET}/incoming/",
              "sagemaker_retrain_allowed_data_prefixes": json.dumps([f"s3://{BUCKET}/incoming/",
                                                                     f"s3://{BUCKET}/staging/"])}
    monkeypatch.setattr(pipeline.limits, "airflow_variables", lambda name: values.get(name))
    return values


def test_choose_data_per_run_type(s3, variables, tmp_path):
    params = {"dataset_uri": "include/data/housing.csv"}
    s3.put_object(Bucket=BUCKET, Key="incoming/older.csv", Body=b"a,b\n1,2\n")
    event = asset_extra(message(s3_event("incoming/new.csv", version="v3")))
    uri, sources, why = pipeline.choose_data(params, "asset_triggered", [event], s3, tmp_path)
    assert (uri, sources) == (f"s3://{BUCKET}/incoming/new.csv", [{"uri": uri, "version_id": "v3"}])
    assert why.startswith("new data: object")
    uri, sources, why = pipeline.choose_data(params, "scheduled", [], s3, tmp_path)
    assert uri == f"s3://{BUCKET}/incoming/older.csv" and why.startswith("scheduled: newest drop")
    assert pipeline.choose_data(params, "manual", [], s3, tmp_path) == (params["dataset_uri"], None,
                                                                         "Param dataset_uri")
    with pytest.raises(ValueError, match="events name no new object"):
        pipeline.choose_data(params, "asset_triggered", [asset_extra(message(s3_event("elsewhere/a.csv")))], s3,
                             tmp_path)


def test_a_models_own_watched_prefix_replaces_the_variables(s3, variables, tmp_path):
    """A catalog entry's watch_prefix: its scheduled runs read its newest drop, not the deployment-wide prefix's."""
    params = {"dataset_uri": "include/data/housing.csv"}
    s3.put_object(Bucket=BUCKET, Key="incoming/housing.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=BUCKET, Key="incoming/lstat/drop.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=BUCKET, Key="incoming/housing-newer.csv", Body=b"a,b\n1,2\n")
    uri, _, why = pipeline.choose_data(params, "scheduled", [], s3, tmp_path, f"s3://{BUCKET}/incoming/lstat/")
    assert uri == f"s3://{BUCKET}/incoming/lstat/drop.csv" and f"s3://{BUCKET}/incoming/lstat/" in why
    with pytest.raises(ValueError, match="events name no new object"):  # another model's drop is not this one's
        pipeline.choose_data(params, "asset_triggered", [asset_extra(message(s3_event("incoming/housing.csv")))],
                             s3, tmp_path, f"s3://{BUCKET}/incoming/lstat/")


def test_choose_data_refuses_parts_outside_the_allowed_prefixes(s3, variables, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="incoming/d" + MANIFEST_SUFFIX,
                  Body=json.dumps({"parts": ["s3://drops/secret/p0.csv"]}).encode())
    event = asset_extra(message(s3_event("incoming/d" + MANIFEST_SUFFIX, version=None)))
    with pytest.raises(ValueError, match="not under an allowed prefix"):
        pipeline.choose_data({"dataset_uri": "x"}, "asset_triggered", [event], s3, tmp_path)


# --- the admins' size cap on S3 data sets (issue 24, finding 5) -----------------------------------
def test_an_s3_data_set_over_max_dataset_bytes_is_refused_before_it_is_read(s3, variables, tmp_path):
    variables["sagemaker_retrain_limits"] = json.dumps({"max_dataset_bytes": 100})
    s3.put_object(Bucket=BUCKET, Key="staging/big.csv", Body=b"a,b\n" + b"1,2\n" * 30)  # 124 bytes
    s3.put_object(Bucket=BUCKET, Key="staging/small.csv", Body=b"a,b\n1,2\n")
    reads = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: reads.append(kw["params"]["Key"]))
    with pytest.raises(ValueError) as raised:
        pipeline.choose_data({"dataset_uri": f"s3://{BUCKET}/staging/big.csv"}, "manual", [], s3, tmp_path)
    assert str(raised.value) == (f"The data set s3://{BUCKET}/staging/big.csv has 124 bytes, more than the limit "
                                 "max_dataset_bytes=100 (Variable sagemaker_retrain_limits); nothing was read")
    assert reads == []
    small = f"s3://{BUCKET}/staging/small.csv"
    assert pipeline.choose_data({"dataset_uri": small}, "manual", [], s3, tmp_path)[0] == small


def test_a_multi_part_drop_is_capped_by_its_parts_total(s3, variables, tmp_path):
    variables["sagemaker_retrain_limits"] = json.dumps({"max_dataset_bytes": 100})
    parts = [f"s3://{BUCKET}/staging/p{i}.csv" for i in range(3)]
    for part in parts:  # 40 bytes each: every part is under the cap, the three together are not
        s3.put_object(Bucket=BUCKET, Key=part.split("/", 3)[3], Body=b"a,b\n" + b"1,2\n" * 9)
    s3.put_object(Bucket=BUCKET, Key="incoming/d" + MANIFEST_SUFFIX, Body=json.dumps({"parts": parts}).encode())
    event = asset_extra(message(s3_event("incoming/d" + MANIFEST_SUFFIX, version=None)))
    with pytest.raises(ValueError, match=r"3 parts has 120 bytes or more .*max_dataset_bytes=100"):
        pipeline.choose_data({"dataset_uri": "x"}, "asset_triggered", [event], s3, tmp_path)
    variables["sagemaker_retrain_limits"] = json.dumps({"max_dataset_bytes": 120})
    assert pipeline.choose_data({"dataset_uri": "x"}, "asset_triggered", [event], s3, tmp_path)[1] == [
        {"uri": part, "version_id": None} for part in parts]
