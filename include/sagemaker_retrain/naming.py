"""Run-scoped SageMaker resource names.

Names come from the DAG run (never from parse time), so a retry of the same run computes the
same names (what makes re-attaching and idempotent creates possible) and two runs never collide.

A run's names carry a *generation*: 0 on its first pass, N after the N-th Clear that trains again.
The generation is taken from facts, not from Airflow's ``clear_number`` (which goes up on the clear
of any single task, since clearing a task also clears the run's setup): the training jobs this run
already made (found by name, trusted by their run tag) and whether ``train`` is about to run again.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_NAME_LENGTH = 63
GENERATION_SUFFIX = re.compile(r"-c(\d+)$")


def run_slug(run_id: str, run_after: datetime, generation: int = 0) -> str:
    """A short, sortable, unique tag for a DAG run: UTC time of the run plus a hash of its id.

    From the second generation on (a Clear that trains anew) the generation is appended (``-c1``),
    so the cleared run trains under new names instead of finding the finished job of its first pass.
    """
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:6]
    slug = f"{run_after:%Y%m%d-%H%M%S}-{digest}"
    return f"{slug}-c{generation}" if generation else slug


def generation_of(job_name: str, base_slug: str) -> int | None:
    """The generation a training job's name carries (``…-BASE`` or ``…-BASE-cN``), or None if not this run's."""
    if job_name.endswith(f"-{base_slug}"):
        return 0
    match = re.search(rf"-{re.escape(base_slug)}-c(\d+)$", job_name)
    return int(match.group(1)) if match else None


def next_generation(existing: list[int], retrain: bool) -> int:
    """The generation this pass of ``prepare`` names: the current one, or a new one when ``train`` runs again.

    ``existing``: the generations of this run's training jobs in SageMaker (by name and run tag).
    ``retrain``: ``train`` is cleared (a whole-run Clear, or a clear of ``train``) or has not run yet.
    A clear of any task after ``train`` keeps the names of the job ``train`` attached to.
    """
    if not existing:
        return 0
    latest = max(existing)
    return latest + 1 if retrain else latest


def resource_name(base: str, slug: str) -> str:
    """``base-slug`` cut to SageMaker's 63 characters, keeping the slug whole."""
    room = MAX_NAME_LENGTH - len(slug) - 1
    trimmed = re.sub(r"-+$", "", base[:room])
    name = f"{trimmed}-{slug}"
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a valid SageMaker name (letters, digits and hyphens, at most 63)")
    return name
