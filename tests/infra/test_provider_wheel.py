"""The provider's wheel holds the provider only: no emulator, no deployment config, no moto among its requirements.

Both distributions are built from a copy of the sources (nothing is written into the work tree), with the
setuptools already installed (no network): the provider from pyproject.toml, the emulator from
include/offline_aws/pyproject.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _build(source: Path, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--disable-pip-version-check", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def _metadata(wheel: Path) -> tuple[set[str], object, str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode())
        points = next((archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    return names, metadata, points


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    shutil.copy(PROJECT / "pyproject.toml", src)
    shutil.copy(PROJECT / "README.md", src)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in ("sagemaker_retrain", "offline_aws", "airflow_deployment"):
        shutil.copytree(PROJECT / "include" / package, src / "include" / package, ignore=ignore)
    return src


def test_the_provider_wheel_has_no_emulator_and_requires_no_moto(sources, tmp_path):
    names, metadata, points = _metadata(_build(sources, tmp_path / "provider"))
    top = {name.split("/")[0] for name in names}
    assert "sagemaker_retrain" in top
    assert not {"offline_aws", "airflow_deployment"} & top, top
    assert "sagemaker_retrain/links.py" in names and "sagemaker_retrain/provider_info.py" in names
    requires = metadata.get_all("Requires-Dist") or []
    assert not [r for r in requires if "moto" in r.lower()], requires
    assert metadata["Name"] == "airflow-provider-sagemaker-retrain"
    assert "[apache_airflow_provider]" in points and "sagemaker_retrain.provider_info:get_provider_info" in points
    assert "offline-aws" not in points


def test_the_emulator_is_its_own_distribution_with_moto_and_its_script(sources, tmp_path):
    names, metadata, points = _metadata(_build(sources / "include" / "offline_aws", tmp_path / "emulator"))
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"offline_aws"}, top
    assert {"offline_aws/linear_learner/__init__.py", "offline_aws/sagemaker/__init__.py"} <= names
    assert metadata["Name"] == "offline-aws"
    assert any(r.lower().startswith("moto") for r in metadata.get_all("Requires-Dist") or [])
    assert "offline-aws = offline_aws.__main__:main" in points
