"""Chromium from Debian's packages (installed here if missing) and the shared native deployment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import native_deployment
import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download cannot work here: its Python package drives Debian's Chromium.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def deployment(request):
    started = native_deployment.acquire()
    yield started
    native_deployment.release(keep_files=request.session.testsfailed > 0)


def _install_chromium() -> None:
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") is None:
        pytest.fail("/usr/bin/chromium is missing and there is no apt-get to install it")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        proc = subprocess.run(sudo + cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def browser():
    _install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
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
