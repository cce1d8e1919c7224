"""Script mode's overhead per job in the emulator, beyond the script's own run time (issue 22).

The script is ``bench/scripts/housing_regressor/train.py`` (scikit-learn ``GradientBoostingRegressor``,
``n_estimators=50``) on the housing table's 455 training rows (the walkthrough's split) as the
``train`` channel, packed as ``sourcedir.tar.gz`` and uploaded once, hyperparameters JSON-encoded as
the SageMaker SDK sends them. The script writes its own wall-clock start (its first statement,
before its imports) and end into ``SM_MODEL_DIR/timing.json``.

Per job, at time scale 0: submission to Completed = the job's ``TrainingEndTime`` less the wall clock
just before ``CreateTrainingJob`` (same machine, same clock; polled every 0.25 s to notice the end),
minus the script's own run time (end - start, read back from ``model.tar.gz``). What remains is
the emulator's: the request, fetching and extracting the code and the channel, the ``/opt/ml``
tree, the role's credentials, starting the interpreter, the log, tarring and uploading the model.
The figure is the median over ``--jobs`` jobs run one after another.

Also shown (note): the same script run by hand (``python train.py`` in a subprocess with the
``SM_*`` variables pointing at a local copy of the channel), its wall time and the script's own time.

    python bench/bench_script_mode.py [--jobs 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOUSING, PYTHON, Figure, emulator_process, median, report  # noqa: E402
from _jobs import (  # noqa: E402
    channel,
    create_role,
    image,
    read_tar_member,
    s3_parts,
    script_hyperparameters,
    sourcedir_tar,
    train,
    training_request,
)
from bench_algorithms_housing import csv_body, walkthrough_split  # noqa: E402

GOAL = 1.0
BUCKET = "bench-script-mode"
SCRIPT_DIR = Path(__file__).resolve().parent / "scripts" / "housing_regressor"
USER_HPS = {"n_estimators": 50, "max_depth": 3, "learning_rate": 0.1, "random_state": 0}


def by_hand(train_csv: bytes) -> tuple[float, float]:
    """(wall seconds, the script's own seconds) of ``python train.py`` run directly."""
    with tempfile.TemporaryDirectory() as tmp:
        data, model = Path(tmp, "train"), Path(tmp, "model")
        data.mkdir()
        (data / "train.csv").write_bytes(train_csv)
        env = {**os.environ, "SM_MODEL_DIR": str(model), "SM_CHANNEL_TRAIN": str(data)}
        args = []  # as script mode passes them: --name value, sorted
        for key, value in sorted(USER_HPS.items()):
            args += [f"--{key}", str(value)]
        start = time.perf_counter()
        subprocess.run([PYTHON, "train.py", *args], cwd=str(SCRIPT_DIR), env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        timing = json.loads((model / "timing.json").read_text())
    return wall, timing["end"] - timing["start"]


def measure(jobs: int) -> list[Figure]:
    table = np.loadtxt(HOUSING, delimiter=",", skiprows=1)
    label_first = np.c_[table[:, -1], table[:, :-1]]
    train_rows, _ = walkthrough_split(len(table))
    train_csv = csv_body(label_first[train_rows])
    totals, scripts, overheads, hand_walls, hand_scripts = [], [], [], [], []
    with emulator_process(time_scale=0) as emu:
        s3, sm = emu.client("s3"), emu.client("sagemaker")
        s3.create_bucket(Bucket=BUCKET)
        create_role(emu)
        s3.put_object(Bucket=BUCKET, Key="data/train/train.csv", Body=train_csv)
        submit = f"s3://{BUCKET}/code/sourcedir.tar.gz"
        s3.put_object(Bucket=BUCKET, Key=s3_parts(submit)[1], Body=sourcedir_tar(SCRIPT_DIR))
        region = emu.env["AWS_DEFAULT_REGION"]
        for job in range(jobs):
            name = f"bench-script-mode-{job}"
            request = training_request(name, image("sklearn", region),
                                       script_hyperparameters("train.py", submit, region, name, USER_HPS),
                                       [channel("train", f"s3://{BUCKET}/data/train/")], f"s3://{BUCKET}/output")
            desc, total = train(sm, request)
            bucket, key = s3_parts(desc["ModelArtifacts"]["S3ModelArtifacts"])
            timing = json.loads(read_tar_member(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), "timing.json"))
            script = timing["end"] - timing["start"]
            totals.append(total)
            scripts.append(script)
            overheads.append(total - script)
            wall, own = by_hand(train_csv)
            hand_walls.append(wall)
            hand_scripts.append(own)
            print(f"# job {job + 1}: submission to Completed {total:.3f} s, script {script:.3f} s, overhead "
                  f"{total - script:.3f} s; by hand {wall:.3f} s (script {own:.3f} s)", flush=True)
    overhead = median(overheads)
    hand_overhead = median([w - o for w, o in zip(hand_walls, hand_scripts, strict=True)])
    return [Figure(
        "script mode overhead per job (scikit-learn, time scale 0)", f"{overhead:.2f} s",
        f"{median(scripts):.2f} s the script's own run time", f"{median(totals):.2f} s in all", f"<= {GOAL:.0f} s",
        overhead <= GOAL,
        note=f"median of {jobs} jobs one after another: submission to Completed (TrainingEndTime less the wall "
             f"clock before CreateTrainingJob) minus the script's own start-to-end (timed inside it, before its "
             f"imports); script bench/scripts/housing_regressor/train.py, "
             f"{', '.join(f'{k}={v}' for k, v in USER_HPS.items())}, 455 rows; first job's overhead "
             f"{overheads[0]:.2f} s, max {max(overheads):.2f} s; by hand (python train.py in a subprocess): "
             f"{median(hand_walls):.2f} s wall, {median(hand_scripts):.2f} s of it the script's own, so "
             f"{hand_overhead:.2f} s to start and end the interpreter and the process, which the emulator pays "
             f"too: the emulator's own share is about {overhead - hand_overhead:.2f} s",
        raw={"overheads_s": overheads, "totals_s": totals, "scripts_s": scripts, "by_hand_s": hand_walls})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    report(measure(args.jobs), args.json)


if __name__ == "__main__":
    main()
