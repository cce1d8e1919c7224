"""Data preparation: validation messages, the deterministic split, the output layout, and uploads.

Uploads run against moto's in-process ``mock_aws`` (the same S3 model the emulator serves).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from offline_aws.linear_learner.data import read_recordio_protobuf
from sagemaker_retrain.data_prep.encoding import RECORDIO
from sagemaker_retrain.data_prep.errors import DataValidationError
from sagemaker_retrain.data_prep.prepare import PreparedData, prepare_and_upload, prepare_dataset

PROJECT = Path(__file__).resolve().parents[2]
HOUSING = PROJECT / "include" / "data" / "housing.csv"
BUCKET = "data-prep-tests"


def table(rows: int = 40, seed: int = 0) -> np.ndarray:
    """Columns a, b, y (y is a row id, so every row is recognisable after the split)."""
    rng = np.random.default_rng(seed)
    return np.c_[np.round(rng.normal(size=(rows, 2)), 4), np.arange(rows, dtype=float)]


def to_csv(values: np.ndarray, header: str = "a,b,y", newline: str = "\n") -> bytes:
    body = newline.join(",".join(f"{v:g}" for v in row) for row in values)
    return (header + newline + body + newline).encode()


def prepare(data: bytes, tmp_path: Path, **overrides):
    kwargs = dict(target_column="y", predictor_type="regressor", validation_fraction=0.1, test_fraction=0.1,
                  seed=42, workdir=tmp_path)
    kwargs.update(overrides)
    kwargs["workdir"].mkdir(parents=True, exist_ok=True)
    return prepare_dataset(io.BytesIO(data), **kwargs)


def read_parts(paths: list[Path]) -> np.ndarray:
    return np.vstack([np.loadtxt(p, delimiter=",", ndmin=2) for p in paths])


def error_of(data: bytes, tmp_path: Path, **overrides) -> str:
    with pytest.raises(DataValidationError) as err:
        prepare(data, tmp_path, **overrides)
    return str(err.value)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", "The data set is empty: no header row", id="empty file"),
        pytest.param(b"\n\n  \n", "The data set is empty: no header row", id="only blank lines"),
        pytest.param(b"a,b,y\n", "The data set has a header but no data rows", id="header only"),
        pytest.param(b"a,b,y", "The data set has a header but no data rows", id="header without newline"),
        pytest.param(b"a,b,y\n\n\n", "The data set has a header but no data rows", id="header and blank lines"),
        pytest.param(b"a,b,c\n1,2,3\n", "Target column 'y' not in the header; columns are ['a', 'b', 'c']",
                     id="missing target"),
        pytest.param(b"a,a,y\n1,2,3\n", "Column name 'a' appears more than once in the header", id="duplicate name"),
        pytest.param(b"a, a ,y\n1,2,3\n", "Column name 'a' appears more than once in the header",
                     id="duplicate after stripping"),
        pytest.param(b"a,,y\n1,2,3\n", "Column 2 of the header has a blank name", id="blank name"),
        pytest.param(b"a;b;y\n1;2;3\n", "the file must be comma-separated", id="semicolon delimiter"),
        pytest.param(b"a\tb\ty\n1\t2\t3\n", "the file must be comma-separated", id="tab delimiter"),
        pytest.param(b"y\n1\n2\n", "at least one feature column besides the target", id="target only"),
    ],
)
def test_bad_header_or_shape(tmp_path, data, expected):
    assert expected in error_of(data, tmp_path)


def test_bad_cells_name_the_line_and_column(tmp_path):
    good = to_csv(table(30)).decode().splitlines()

    def with_line(number: int, text: str) -> bytes:  # number is the file's 1-based line number
        lines = list(good)
        lines[number - 1] = text
        return ("\n".join(lines) + "\n").encode()

    assert error_of(with_line(5, "1.5,abc,3"), tmp_path) == "Line 5, column 'b' is not numeric: 'abc'"
    assert error_of(with_line(7, "nan,1,2"), tmp_path) == "Line 7, column 'a' is not finite: 'nan'"
    assert error_of(with_line(8, "1,inf,2"), tmp_path) == "Line 8, column 'b' is not finite: 'inf'"
    assert error_of(with_line(9, "1,-Infinity,2"), tmp_path) == "Line 9, column 'b' is not finite: '-Infinity'"
    assert error_of(with_line(3, "1,2,1e999"), tmp_path) == "Line 3, column 'y' is not finite: '1e999'"
    assert error_of(with_line(4, "1,,2"), tmp_path) == "Line 4, column 'b' is empty or missing"
    assert error_of(with_line(6, "1,NA,2"), tmp_path) == "Line 6, column 'b' is not numeric: 'NA'"
    assert error_of(with_line(10, "1-2,1,2"), tmp_path) == "Line 10, column 'a' is not numeric: '1-2'"


def test_ragged_rows_and_wrong_delimiter_in_the_body(tmp_path):
    lines = to_csv(table(30)).decode().splitlines()
    longer = lines[:11] + ["1,2,3,4"] + lines[11:]
    assert error_of(("\n".join(longer) + "\n").encode(), tmp_path) == (
        "Line 12 has 4 field(s) but the header has 3 columns (ragged row)"
    )
    shorter = lines[:20] + ["1,2"] + lines[20:]
    assert error_of(("\n".join(shorter) + "\n").encode(), tmp_path) == (
        "Line 21 has 2 field(s) but the header has 3 columns (ragged row)"
    )
    semicolons = lines[:2] + ["1;2;3"] + lines[2:]
    assert error_of(("\n".join(semicolons) + "\n").encode(), tmp_path) == (
        "Line 3 has 1 field(s) but the header has 3 columns (is the delimiter a comma?)"
    )


def test_line_numbers_count_blank_lines_and_crlf(tmp_path):
    lines = to_csv(table(30)).decode().splitlines()
    lines = lines[:5] + ["", "   "] + lines[5:]
    lines[12] = "1,x,2"
    assert error_of(("\r\n".join(lines) + "\r\n").encode(), tmp_path) == "Line 13, column 'b' is not numeric: 'x'"
    # ... also when the bad line sits in a later chunk
    assert error_of(("\n".join(lines) + "\n").encode(), tmp_path, chunk_rows=4) == (
        "Line 13, column 'b' is not numeric: 'x'"
    )


@pytest.mark.parametrize(("rows", "expected"), [(1, "1 data row(s)"), (9, "9 data row(s)")])
def test_too_few_rows(tmp_path, rows, expected):
    message = error_of(to_csv(table(rows)), tmp_path)
    assert expected in message and "at least 10" in message


def test_constant_target(tmp_path):
    values = table(30)
    values[:, 2] = 7.0
    assert error_of(to_csv(values), tmp_path) == "Target column 'y' is constant (7): nothing to learn"


def test_classifier_labels_are_checked(tmp_path):
    values = table(30)
    values[:, 2] = np.arange(30) % 2
    values[16, 2] = 2
    assert error_of(to_csv(values), tmp_path, predictor_type="binary_classifier") == (
        "Line 18: label 2 is not a class in 0..1 (required for binary_classifier)"
    )
    prepared, _ = prepare(to_csv(values), tmp_path, predictor_type="multiclass_classifier", num_classes=3)
    assert sum(prepared.rows.values()) == 30


def test_bad_content_type(tmp_path):
    assert "is not one of" in error_of(to_csv(table()), tmp_path, content_type="csv")


# ----------------------------------------------------------------------------- the split and the layout


def test_split_is_exact_disjoint_and_deterministic(tmp_path):
    data = to_csv(table(1000))
    prepared, parts = prepare(data, tmp_path / "a")
    assert prepared.rows == {"train": 800, "validation": 100, "test": 100}
    ids = {s: read_parts(p)[:, 0] for s, p in parts.items()}  # the label (row id) comes first
    assert sorted(np.concatenate(list(ids.values()))) == list(range(1000))
    again, parts_again = prepare(data, tmp_path / "b")
    for split in ids:
        assert [p.read_bytes() for p in parts[split]] == [p.read_bytes() for p in parts_again[split]]
    assert again.smoke_features == prepared.smoke_features
    _, other = prepare(data, tmp_path / "c", seed=7)
    assert set(read_parts(other["test"])[:, 0]) != set(ids["test"])


def test_running_totals_keep_the_shares_exact_across_chunks(tmp_path):
    prepared, parts = prepare(to_csv(table(1003)), tmp_path, chunk_rows=37, validation_fraction=0.15,
                              test_fraction=0.05)
    assert prepared.rows == {"train": 801, "validation": 151, "test": 51}  # ceil(1003 * share)
    assert sorted(np.concatenate([read_parts(p)[:, 0] for p in parts.values()])) == list(range(1003))


@pytest.mark.parametrize("target", ["crim", "rm", "medv"])
def test_label_first_without_header_and_values_unchanged(tmp_path, target):
    source = np.loadtxt(HOUSING, delimiter=",", skiprows=1)
    names = HOUSING.read_text().splitlines()[0].split(",")
    prepared, parts = prepare(HOUSING.read_bytes(), tmp_path, target_column=target)
    order = [names.index(target)] + [i for i, n in enumerate(names) if n != target]
    assert prepared.feature_names == [names[i] for i in order[1:]]
    assert prepared.feature_dim == 12 and prepared.target_column == target
    out = read_parts(parts["train"] + parts["validation"] + parts["test"])
    assert not parts["train"][0].read_text().startswith(names[0])
    expected = source[:, order]
    assert np.array_equal(out[np.lexsort(out.T[::-1])], expected[np.lexsort(expected.T[::-1])])
    assert len(prepared.smoke_features) == 5 and len(prepared.smoke_features[0]) == 12


@pytest.mark.parametrize("target", ["crim", "rm", "medv"])
@pytest.mark.parametrize("content_type", ["text/csv", RECORDIO])
def test_csv_channels_carry_the_input_text_unchanged(tmp_path, target, content_type):
    """Each CSV line is its input line's own text, label first: no number is parsed and printed again."""
    lines = HOUSING.read_text().splitlines()
    names = lines[0].split(",")
    position = names.index(target)
    relabelled = {",".join([f[position], *f[:position], *f[position + 1:]])
                  for f in (line.split(",") for line in lines[1:])}
    assert len(relabelled) == len(lines) - 1  # no two rows alike: each written line names its input line
    _, parts = prepare(HOUSING.read_bytes(), tmp_path, target_column=target, content_type=content_type,
                       chunk_rows=97)
    csv_channels = [s for s, paths in parts.items() if paths[0].suffix == ".csv"]
    assert csv_channels == (["train", "validation", "test"] if content_type == "text/csv" else ["test"])
    texts = [path.read_bytes() for s in csv_channels for path in parts[s]]
    assert all(text.endswith(b"\n") and b"\r" not in text for text in texts)
    written = [line for text in texts for line in text.decode().splitlines()]
    assert len(written) == len(set(written)) and set(written) <= relabelled
    assert len(written) == (len(lines) - 1 if content_type == "text/csv" else 51)


def test_housing_split_matches_the_walkthrough_shares(tmp_path):
    prepared, _ = prepare(HOUSING.read_bytes(), tmp_path, target_column="medv")
    assert prepared.rows == {"train": 404, "validation": 51, "test": 51}


def test_fast_and_careful_paths_agree(tmp_path):
    values = table(200)
    plain = to_csv(values)
    quoted = ("a,b,y\n" + "\n".join(",".join(f'"{v:g}"' for v in row) for row in values) + "\n").encode()
    spaced = ("a,b,y\r\n" + "\r\n".join(", ".join(f"{v:g}" for v in row) for row in values) + "\r\n").encode()
    results = [prepare(d, tmp_path / str(i), chunk_rows=16) for i, d in enumerate((plain, quoted, spaced))]
    for split in ("train", "validation", "test"):
        first = read_parts(results[0][1][split])
        for _, parts in results[1:]:
            assert np.array_equal(read_parts(parts[split]), first)


def test_several_train_parts_for_sharding(tmp_path):
    prepared, parts = prepare(to_csv(table(3000)), tmp_path, min_train_parts=3, chunk_rows=500)
    assert prepared.parts == {"train": 3, "validation": 1, "test": 1}
    sizes = [len(read_parts([p])) for p in parts["train"]]
    assert sum(sizes) == 2400 and max(sizes) - min(sizes) <= 1
    rolled, small_parts = prepare(to_csv(table(3000)), tmp_path / "small", part_bytes=4000, chunk_rows=100)
    assert rolled.parts["train"] > 3 and len(read_parts(small_parts["train"])) == 2400
    message = error_of(to_csv(table(12)), tmp_path / "few", min_train_parts=20)
    assert "fewer than the 20 training instances" in message


def test_recordio_train_and_validation_csv_test(tmp_path):
    values = table(500)
    prepared, parts = prepare(to_csv(values), tmp_path, content_type=RECORDIO, chunk_rows=64)
    assert prepared.content_types == {"train": RECORDIO, "validation": RECORDIO, "test": "text/csv"}
    assert prepared.content_type == RECORDIO
    assert all(p.suffix == ".pbr" for p in parts["train"]) and parts["test"][0].suffix == ".csv"
    y, X = read_recordio_protobuf([p.read_bytes() for p in parts["train"] + parts["validation"]])
    test_ids = read_parts(parts["test"])[:, 0]
    assert sorted(np.concatenate([y, test_ids])) == list(range(500))
    by_id = values[y.astype(int)]
    assert np.allclose(X, by_id[:, :2], atol=1e-4)


def test_as_dict_has_the_fields_the_pipeline_reads(tmp_path):
    prepared, _ = prepare(to_csv(table()), tmp_path)
    assert isinstance(prepared, PreparedData)
    d = prepared.as_dict()
    assert {"channel_uris", "rows", "feature_names", "feature_dim", "target_column", "smoke_features",
            "smoke_labels", "content_types", "parts"} <= d.keys()


# ----------------------------------------------------------------------------- uploads


PARAMS = {"target_column": "y", "predictor_type": "regressor", "validation_fraction": 0.1,
          "test_fraction": 0.1, "split_seed": 42, "smoke_rows": 3, "num_classes": None}


def keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_upload_layout_and_uris(s3, tmp_path):
    source = tmp_path / "data.csv"
    source.write_bytes(to_csv(table(100)))
    prepared = prepare_and_upload(str(source), s3_client=s3, bucket=BUCKET, input_prefix="runs/r1/input",
                                  params=PARAMS)
    assert prepared.channel_uris == {s: f"s3://{BUCKET}/runs/r1/input/{s}/" for s in ("train", "validation", "test")}
    assert keys(s3, "runs/r1/") == [f"runs/r1/input/{s}/part-00000.csv" for s in ("test", "train", "validation")]
    body = s3.get_object(Bucket=BUCKET, Key="runs/r1/input/test/part-00000.csv")["Body"].read()
    assert len(np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)) == prepared.rows["test"] == 10


def test_reupload_overwrites_and_removes_stale_parts(s3, tmp_path):
    source = tmp_path / "data.csv"
    source.write_bytes(to_csv(table(300)))
    prefix = "runs/r2/input"
    first = prepare_and_upload(str(source), s3_client=s3, bucket=BUCKET, input_prefix=prefix,
                               params=dict(PARAMS, training_instance_count=3))
    assert first.parts["train"] == 3
    assert len(keys(s3, f"{prefix}/train/")) == 3
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/validation/leftover.csv", Body=b"1,2,3\n")
    before = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/test/part-00000.csv")["Body"].read()
    second = prepare_and_upload(str(source), s3_client=s3, bucket=BUCKET, input_prefix=prefix,
                                params=dict(PARAMS, split_seed=9))
    assert second.parts["train"] == 1
    assert keys(s3, prefix) == [f"{prefix}/{s}/part-00000.csv" for s in ("test", "train", "validation")]
    after = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/test/part-00000.csv")["Body"].read()
    assert after != before  # overwritten with the new split


def test_recordio_upload(s3, tmp_path):
    source = tmp_path / "data.csv"
    source.write_bytes(to_csv(table(100)))
    prepared = prepare_and_upload(str(source), s3_client=s3, bucket=BUCKET, input_prefix="rec",
                                  params=dict(PARAMS, training_content_type=RECORDIO))
    assert keys(s3, "rec/") == ["rec/test/part-00000.csv", "rec/train/part-00000.pbr", "rec/validation/part-00000.pbr"]
    blob = s3.get_object(Bucket=BUCKET, Key="rec/train/part-00000.pbr")["Body"].read()
    y, _ = read_recordio_protobuf([blob])
    assert len(y) == prepared.rows["train"] == 80


def test_failure_after_some_parts_were_uploaded_leaves_nothing(s3, tmp_path, monkeypatch):
    import sagemaker_retrain.data_prep.prepare as data_prep
    from sagemaker_retrain.data_prep.upload import PartUploader

    lines = to_csv(table(5000)).decode().splitlines()
    lines[4900] = "1,oops,3"
    source = tmp_path / "data.csv"
    source.write_text("\n".join(lines) + "\n")
    uploaded = []
    real_submit = PartUploader.submit

    def submit(self, channel, path):
        uploaded.append(path.name)
        real_submit(self, channel, path)

    monkeypatch.setattr(PartUploader, "submit", submit)
    original = data_prep.prepare_dataset
    monkeypatch.setattr(data_prep, "prepare_dataset",
                        lambda *a, **kw: original(*a, **kw, part_bytes=2000, chunk_rows=200))
    with pytest.raises(DataValidationError, match="Line 4901, column 'b' is not numeric: 'oops'"):
        prepare_and_upload(str(source), s3_client=s3, bucket=BUCKET, input_prefix="bad", params=PARAMS)
    assert uploaded, "parts should have been uploaded before the bad line was reached"
    assert keys(s3, "bad/") == []


def test_source_on_s3_and_missing_sources(s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="raw/housing.csv", Body=HOUSING.read_bytes())
    prepared = prepare_and_upload(f"s3://{BUCKET}/raw/housing.csv", s3_client=s3, bucket=BUCKET,
                                  input_prefix="from-s3", params=dict(PARAMS, target_column="medv"))
    assert prepared.rows == {"train": 404, "validation": 51, "test": 51}
    with pytest.raises(DataValidationError, match="Cannot read data set s3://"):
        prepare_and_upload(f"s3://{BUCKET}/raw/missing.csv", s3_client=s3, bucket=BUCKET, input_prefix="x",
                           params=PARAMS)
    with pytest.raises(DataValidationError, match="not found"):
        prepare_and_upload("no/such/file.csv", s3_client=s3, bucket=BUCKET, input_prefix="x", params=PARAMS,
                           base_dir=tmp_path)
    assert keys(s3, "x/") == []


def test_chunks_are_parsed_one_ahead_in_order_and_the_worker_stops_with_the_loop():
    from sagemaker_retrain.data_prep.prepare import _parsed_ahead

    seen = []

    def parse(chunk: int) -> int:
        seen.append(chunk)
        if chunk == 3:
            raise DataValidationError("bad chunk 3")
        return chunk * 10

    parsed = _parsed_ahead(iter(range(10)), parse)
    assert [next(parsed), next(parsed)] == [0, 10]
    parsed.close()
    assert seen == [0, 1, 2]  # one chunk ahead at most, and nothing after close
    seen.clear()
    results = []
    with pytest.raises(DataValidationError, match="bad chunk 3"):
        for value in _parsed_ahead(iter(range(10)), parse):
            results.append(value)
    assert results == [0, 10, 20] and seen == [0, 1, 2, 3]
