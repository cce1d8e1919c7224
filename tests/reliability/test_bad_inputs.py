"""Bad input is refused by prepare (or by the Params), naming the problem, before any SageMaker call.

The corpus is ``tests/data/bad_inputs/``; the cases that cannot be files (a missing path, a
missing S3 object or bucket, a directory, a 2 GB file) are made here. Each runs through the
DAG's own prepare body (``sagemaker_retrain.pipeline.prepare``) with the deployment Variables as
``AIRFLOW_VAR_*``, against the suite's emulator; the emulator's SageMaker call counter must not
move, and no input part may be left on S3. Params are checked with the DAG's own ParamsDict and,
once, through ``airflow dags test -c`` end to end.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reliability_harness import BIN, BUCKET, PREFIX, PROJECT_DIR, Row, reason_line, run_reason

pytestmark = pytest.mark.slow
CORPUS = PROJECT_DIR / "tests" / "data" / "bad_inputs"

# file -> (what is wrong, words the message must contain)
CASES = {
    "empty.csv": ("empty file", ("empty",)),
    "header_only.csv": ("header only", ("no data rows",)),
    "missing_target.csv": ("no 'medv' column", ("'medv'", "not in the header")),
    "non_numeric.csv": ("a word in a numeric column", ("Line 22", "'rm'", "not numeric", "'six'")),
    "nan_cell.csv": ("NaN cell", ("Line 22", "'age'", "not finite")),
    "infinity_cell.csv": ("inf cell", ("Line 22", "'dis'", "not finite")),
    "duplicate_column.csv": ("column name twice", ("'rm'", "more than once")),
    "blank_column_name.csv": ("blank column name", ("Column 6", "blank name")),
    "ragged_row.csv": ("a row with 11 of 13 fields", ("Line 22", "11 field", "13 columns")),
    "semicolon_delimiter.csv": ("';' as delimiter", ("comma-separated",)),
    "single_row.csv": ("one data row", ("1 data row", "at least 10")),
    "constant_target.csv": ("the target is constant", ("'medv'", "constant")),
    "gzip_not_csv.csv": ("a gzip file named .csv", ("binary", "gzip")),
}
EXTRA = {
    "missing_path": ("tests/data/bad_inputs/does-not-exist.csv", "a path that does not exist", ("not found",)),
    "directory": ("tests/data/bad_inputs", "a directory, not a file", ("not found", "bad_inputs")),
    "missing_s3_key": (f"s3://{BUCKET}/nowhere/data.csv", "an S3 key that does not exist",
                       ("Cannot read data set", "NoSuchKey")),
    "missing_s3_bucket": ("s3://no-such-bucket-xyz/data.csv", "an S3 bucket that does not exist",
                          ("Cannot read data set", "NoSuchBucket")),
}


def _params(**overrides) -> dict:
    from sagemaker_retrain.params import build_params

    params = {k: v.value for k, v in build_params().items()}
    params.update(overrides)
    return params


@pytest.fixture(scope="module")
def prepare_env(rel):
    """The deployment Variables and the emulator endpoints in this process, for pipeline.prepare."""
    env = {k: v for k, v in rel.env.items() if k.startswith(("AIRFLOW_VAR_", "AWS_"))}
    # These cases test how prepare reports unreadable or malformed sources, so the admins' allowed
    # places (sagemaker_retrain.limits) are widened to the corpus and the buckets the cases name.
    env["AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALLOWED_DATA_PREFIXES"] = json.dumps(
        [f"s3://{BUCKET}/", "s3://no-such-bucket-xyz/", str(CORPUS)])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _refuse(rel, uri: str, run_id: str) -> tuple[str, int, list[str], float]:
    """Run prepare on ``uri``; return (message, SageMaker calls made, S3 keys left, seconds)."""
    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_retrain import naming, pipeline

    when = datetime.now(UTC)
    before = sum(rel.calls().values())
    started = time.monotonic()
    with pytest.raises(AirflowFailException) as raised:
        pipeline.prepare(_params(dataset_uri=uri), run_id, when, PROJECT_DIR, None)
    seconds = round(time.monotonic() - started, 2)
    slug = naming.run_slug(run_id, when)
    left = rel.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/runs/{slug}/").get("KeyCount", 0)
    return str(raised.value), sum(rel.calls().values()) - before, left, seconds


def _row(case: str, injected: str, message: str, calls: int, left: int, seconds: float) -> None:
    Row(scenario=f"bad_input:{case}", injected=injected, expected_state="refused", state="refused",
        pipeline_did="prepare refused it", reason=message[:240], resources_left=str(left), orphans=[],
        downtime_s=None, failed_calls=None, answers_other=None, training_jobs=0, sagemaker_calls=calls,
        seconds=seconds).write()


@pytest.mark.parametrize("filename", sorted(CASES))
def test_bad_file_refused_before_any_sagemaker_call(rel, prepare_env, filename):
    injected, words = CASES[filename]
    message, calls, left, seconds = _refuse(rel, str(CORPUS / filename), f"manual__bad-{filename}")
    _row(filename, injected, message, calls, left, seconds)
    for word in words:
        assert word in message, (word, message)
    assert calls == 0
    assert left == 0


@pytest.mark.parametrize("case", sorted(EXTRA))
def test_unreadable_source_refused(rel, prepare_env, case):
    uri, injected, words = EXTRA[case]
    message, calls, left, seconds = _refuse(rel, uri, f"manual__bad-{case}")
    _row(case, injected, message, calls, left, seconds)
    for word in words:
        assert word in message, (word, message)
    assert calls == 0 and left == 0


CHILD = """
import json, resource, sys
from datetime import UTC, datetime
from pathlib import Path
from airflow.sdk.exceptions import AirflowFailException
from sagemaker_retrain import pipeline
params = json.loads(sys.argv[2])
try:
    pipeline.prepare(params, "manual__bad-2gb", datetime.now(UTC), Path(sys.argv[1]), None)
    message = "ACCEPTED"
except AirflowFailException as err:
    message = str(err)
print(json.dumps({"message": message, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write_big_csv(path: Path, size: int) -> int:
    """~``size`` bytes of valid housing-like rows, then one bad line at the very end; return its line number."""
    header = (PROJECT_DIR / "include" / "data" / "housing.csv").read_text().splitlines()
    block = ("\n".join(header[1:]) + "\n").encode()
    block = block * max(1, (8 * 1024 * 1024) // len(block))
    lines_per_block = block.count(b"\n")
    lines = 1
    with path.open("wb") as f:
        f.write((header[0] + "\n").encode())
        written = 0
        while written < size:
            f.write(block)
            written += len(block)
            lines += lines_per_block
        f.write(b"0.1,0,7.07,0,0.469,6.4,78.9,4.9671,2,242,17.8,9.14,oops\n")
    return lines + 1


def test_two_gigabyte_file_streams_in_bounded_memory(rel, tmp_path):
    big = tmp_path / "big.csv"
    bad_line = _write_big_csv(big, 2 * 1024**3)
    size_gb = big.stat().st_size / 1024**3
    env = {**rel.env, "AIRFLOW_VAR_SAGEMAKER_RETRAIN_ALLOWED_DATA_PREFIXES": json.dumps([str(tmp_path)])}
    before = sum(rel.calls().values())
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "python"), "-c", CHILD, str(PROJECT_DIR),
                           json.dumps(_params(dataset_uri=str(big)))],
                          env=env, capture_output=True, text=True, timeout=600)
    seconds = round(time.monotonic() - started, 1)
    big.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    calls = sum(rel.calls().values()) - before
    left = rel.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/runs/").get("Contents", [])
    left = [o["Key"] for o in left if "bad-2gb" in o["Key"]]
    peak = round(result["peak_rss_mb"])
    _row("2gb_file", f"{size_gb:.2f} GB of valid rows, a bad cell on the last line ({bad_line}); peak RSS of "
         f"the preparing process {peak} MB", result["message"], calls, len(left), seconds)
    assert f"Line {bad_line}" in result["message"] and "'medv'" in result["message"], result
    assert calls == 0
    assert peak < 1024, f"prepare used {peak} MB for a {size_gb:.1f} GB file"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 < 1024


# --- Params: refused by the form / `dags test -c`, before any task ----------------------------------
PARAM_CASES = {
    "epochs=0": {"epochs": 0},
    "epochs='ten'": {"epochs": "ten"},
    "mini_batch_size=-5": {"mini_batch_size": -5},
    "learning_rate=2": {"learning_rate": 2},
    "test_fraction=0.9": {"test_fraction": 0.9},
    "predictor_type='tree'": {"predictor_type": "tree"},
    "endpoint_instance_type='big'": {"endpoint_instance_type": "big"},
    "endpoint_name='bad name!'": {"endpoint_name": "bad name!"},
    "mode='forever'": {"mode": "forever"},
    "normalize_data='yes'": {"normalize_data": "yes"},
    "gate_metric='accuracy'": {"gate_metric": "accuracy"},
}


@pytest.mark.parametrize("case", sorted(PARAM_CASES))
def test_param_out_of_range_or_wrong_type_refused(case):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    from sagemaker_retrain.params import build_params

    params = ParamsDict(build_params())
    started = time.monotonic()
    with pytest.raises(ParamValidationError) as raised:
        for key, value in PARAM_CASES[case].items():
            params[key] = value
        params.validate()
    message = str(raised.value)
    key = next(iter(PARAM_CASES[case]))
    Row(scenario=f"bad_input:param {case}", injected=f"Param {case}", expected_state="refused", state="refused",
        pipeline_did="the DAG's Params refused it (form / trigger)", reason=message[:240], resources_left="0",
        orphans=[], downtime_s=None, failed_calls=None, answers_other=None, training_jobs=0, sagemaker_calls=0,
        seconds=round(time.monotonic() - started, 2)).write()
    assert key in message, message


def test_bad_param_refused_by_dags_test_before_any_run(rel):
    before_calls = sum(rel.calls().values())
    before_run = rel.latest_run_id()
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "airflow"), "dags", "test", "sagemaker_retrain", "-c",
                           json.dumps({"epochs": "ten", "endpoint_name": "rel-params"})],
                          env=rel.env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    message = (run_reason(output, "ParamValidationError", "Invalid input for param")
               or reason_line(output, "ParamValidationError", "Invalid input for param"))
    calls = sum(rel.calls().values()) - before_calls
    Row(scenario="bad_input:param via dags test -c", injected="`airflow dags test -c '{\"epochs\": \"ten\"}'`",
        expected_state="refused", state="refused" if proc.returncode else "accepted",
        pipeline_did="no run created" if rel.latest_run_id() == before_run else "a run was created",
        reason=message[:240], resources_left="0", orphans=[], downtime_s=None, failed_calls=None,
        answers_other=None, training_jobs=0, sagemaker_calls=calls,
        seconds=round(time.monotonic() - started, 1)).write()
    assert proc.returncode != 0, output[-3000:]
    assert "epochs" in output and message, output[-3000:]
    assert calls == 0
