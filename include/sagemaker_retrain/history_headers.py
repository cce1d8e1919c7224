"""Response headers of the model history page: what a browser may load and run there, and nothing else.

The page shows text that came from S3 records and the registry. It escapes all of it; the
Content-Security-Policy is the second line: no script but the page's own theme snippet and no style
but its own sheet (both allowed by hash, not ``unsafe-inline``), images only from the page's origin
(the plots), no plugins, forms or ``<base>``, and framed only by the Airflow UI (same origin).
``nosniff`` keeps a plot or a JSON answer from being read as HTML.
"""

from __future__ import annotations

import base64
import hashlib


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def content_security_policy(scripts: tuple[str, ...], styles: tuple[str, ...]) -> str:
    """The policy allowing exactly these inline ``<script>``/``<style>`` bodies."""
    return "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(_hash(s) for s in scripts),
        "style-src " + " ".join(_hash(s) for s in styles),
        "img-src 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "object-src 'none'",
    ])


def security_headers(scripts: tuple[str, ...], styles: tuple[str, ...]) -> dict[str, str]:
    """Every response's headers (pages, JSON, plots and errors alike)."""
    return {
        "Content-Security-Policy": content_security_policy(scripts, styles),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
