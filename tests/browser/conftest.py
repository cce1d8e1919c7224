"""Chromium, obtained by the tests themselves, and the shared native deployment.

Where Chromium comes from, first that works: Debian's ``/usr/bin/chromium`` if installed; else
``apt-get install chromium`` (as root, or with password-less sudo); else Playwright's own build,
``playwright install chromium`` (machines without apt, e.g. macOS). Playwright's download is not a
package registry, so on machines that reach only registries (ours, CI) the Debian package is the way.
If none can be had, the browser tests fail with what each way answered.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import native_deployment
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def deployment(request):
    started = native_deployment.acquire()
    yield started
    native_deployment.release(keep_files=request.session.testsfailed > 0)


def _run(cmd: list[str], **kwargs) -> str:
    """An empty string when ``cmd`` succeeded, else what it said."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{' '.join(cmd)}: {err}"
    return "" if proc.returncode == 0 else f"{' '.join(cmd)} (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}"


def _apt_get_chromium() -> str:
    if shutil.which("apt-get") is None:
        return "apt-get: not on this machine"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        failed = _run(sudo + cmd, env=env)
        if failed:
            return failed
    return "" if CHROMIUM.exists() else "apt-get install chromium: no /usr/bin/chromium afterwards"


def chromium_executable() -> str | None:
    """Debian's Chromium (None: Playwright's own, which ``playwright install chromium`` put in place)."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    answers = [_apt_get_chromium()]
    if CHROMIUM.exists():
        return str(CHROMIUM)
    answers.append(_run([sys.executable, "-m", "playwright", "install", "chromium"]))
    if not answers[-1]:
        return None
    pytest.fail("no Chromium for the browser tests: /usr/bin/chromium is missing, and\n- " + "\n- ".join(answers)
                + "\nInstall Debian's chromium package, or run `.venv/bin/playwright install chromium` where "
                  "Playwright's download host is reachable.")


@pytest.fixture(scope="session")
def browser():
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def log_in(deployment):
    """Sign in as the deployment's admin through the login form, as a person would."""
    from playwright.sync_api import expect

    def sign_in(page) -> None:
        page.goto(deployment.base_url)
        expect(page).to_have_url(re.compile(r"/auth/login"))
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(deployment.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("link", name="Dags").first).to_be_visible()

    return sign_in
