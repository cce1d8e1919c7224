"""Run-scoped SageMaker resource names.

Names come from the DAG run (never from parse time), so a retry of the same run computes the
same names (what makes re-attaching and idempotent creates possible) and two runs never collide.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_NAME_LENGTH = 63


def run_slug(run_id: str, run_after: datetime, clear_number: int = 0) -> str:
    """A short, sortable, unique tag for a DAG run: UTC time of the run plus a hash of its id.

    A run that was cleared (Clear in the UI) gets its clear number appended, so it trains anew
    under new names instead of finding the finished job of its first pass.
    """
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:6]
    slug = f"{run_after:%Y%m%d-%H%M%S}-{digest}"
    return f"{slug}-c{clear_number}" if clear_number else slug


def resource_name(base: str, slug: str) -> str:
    """``base-slug`` cut to SageMaker's 63 characters, keeping the slug whole."""
    room = MAX_NAME_LENGTH - len(slug) - 1
    trimmed = re.sub(r"-+$", "", base[:room])
    name = f"{trimmed}-{slug}"
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a valid SageMaker name (letters, digits and hyphens, at most 63)")
    return name
