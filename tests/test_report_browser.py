"""The report and the live dashboard in a real headless browser (Debian's chromium through
playwright): charts rendered as SVG, no console errors, and no request leaves the machine.

.ci/run installs chromium (apt) and playwright (pip). Where they are missing these tests are
skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import PY, base_env, terminate, wait_for
from tests.reportsweep import CONFIG, make_sweep

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and playwright (see .ci/run)")
        pytest.skip("needs chromium (apt-get install chromium) and playwright (pip install playwright)")
    return sync_playwright


@pytest.fixture()
def browser() -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page with its console errors and its requests recorded."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def svg_count(self, selector: str) -> int:
        return int(self.page.eval_on_selector_all(f"{selector} .main-svg", "els => els.length"))


def test_report_renders_offline_in_chromium(r: redis.Redis, redis_url: str, tmp_path: Path, browser: Any) -> None:
    sid = make_sweep(redis_url)
    out = tmp_path / "report.html"
    done = subprocess.run(
        [PY, "-m", "sweepq", "report", sid, "--redis", redis_url, "-o", str(out)],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    w = Watched(browser)
    w.page.route("http*://**", lambda route: route.abort())  # offline: any network request fails
    w.page.goto(out.as_uri())
    w.page.wait_for_selector("#fig-curves .main-svg", timeout=30_000)
    for fig in ("#fig-parcoords", "#fig-importance", "#fig-curves"):
        assert w.svg_count(fig) > 0, fig
    assert w.page.locator("#fig-parcoords .parcoords").count() == 1  # the plot itself, not only its frame
    assert w.page.locator("#fig-curves .scatterlayer .trace").count() >= 12
    assert w.errors == []
    assert [u for u in w.requests if not u.startswith("file:")] == []
    # the table: one row per trial, sortable by clicking a header
    assert w.page.locator("#trials tbody tr").count() == 12
    w.page.click("#trials th[data-key='best']")
    firsts = w.page.locator("#trials tbody tr td:first-child").all_inner_texts()
    best = min((t for t in r.keys(f"sweepq:{{{sid}}}:trial:*")), key=lambda k: float(r.hget(k, "best") or 9e9))
    assert firsts[0].strip() == r.hget(best, "number").decode()
    assert "log_uniform_values" in w.page.inner_text("#config")
    if os.environ.get("SWEEPQ_SCREENSHOT"):  # the README's picture: SWEEPQ_SCREENSHOT=docs/report.png
        w.page.screenshot(path=os.environ["SWEEPQ_SCREENSHOT"], full_page=True)


def test_dashboard_updates_by_itself(r: redis.Redis, redis_url: str, tmp_path: Path, browser: Any) -> None:
    import sweepq

    sid = sweepq.sweep({**CONFIG, "run_cap": 8}, redis=redis_url)
    sweepq.agent(sid, function=_train, count=3, redis=redis_url)
    proc = subprocess.Popen(
        [PY, "-m", "sweepq", "dashboard", sid, "--redis", redis_url, "--port", "0"],
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/sweep/{sid}/"), url
        w = Watched(browser)
        w.page.goto(url)
        w.page.wait_for_selector("#fig-curves .main-svg", timeout=30_000)
        wait_for(lambda: "live: updated" in w.page.inner_text("#live"), timeout=20, what="the first poll")
        assert w.page.locator("#trials tbody tr").count() == 3
        # more trials arrive while the page is open: it shows them with no reload
        more = threading.Thread(
            target=sweepq.agent, args=(sid,), kwargs={"function": _train, "count": 5, "redis": redis_url}
        )
        more.start()
        more.join(timeout=120)
        wait_for(lambda: w.page.locator("#trials tbody tr").count() == 8, timeout=30, what="8 rows after polling")
        assert w.svg_count("#fig-parcoords") > 0 and w.svg_count("#fig-importance") > 0
        assert w.page.locator("#fig-curves .scatterlayer .trace").count() >= 8
        assert w.errors == []
        assert all(u.startswith(url.split("/sweep/")[0]) for u in w.requests), w.requests
    finally:
        terminate(proc)  # type: ignore[arg-type]


def _train() -> None:
    from tests.reportsweep import train

    train()
