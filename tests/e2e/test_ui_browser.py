"""The dashboard page in a real headless Chromium (Debian's, driven by Selenium through
Debian's chromedriver): after a real workload, the numbers it displays and the totals its
charts plotted are the stored records' sums. Saves a screenshot to test-artifacts/ui.png.

Needs /usr/bin/chromium and /usr/bin/chromedriver (`scripts/install-browser.sh`); nothing is
downloaded: the driver path is given explicitly and Selenium Manager runs offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from sluice.web.alerts import ALERTS
from sluice.web.ui import ADMIN_KEY_ENV
from tests.integration.test_ui import (
    ADMIN_KEY,
    CALLS,
    FAULTY,
    cost_of,
    run_workload,
    start_dashboard,
    stored_calls,
    wait_for_calls,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_MISSING = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]

skip_without_browser = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"no headless browser: {', '.join(_MISSING)} missing "
    "(run scripts/install-browser.sh as root to install Debian's chromium and chromium-driver)",
)

TOTAL_IDS = (
    "total-calls",
    "total-errors",
    "error-rate",
    "total-cost",
    "unpriced-calls",
    "total-tokens",
    "cache-hit-rate",
    "total-saved",
    "latency-p95",
)
CHART_ATTRS = {
    "chart-cost-feature": ("total", "series", "buckets"),
    "chart-cost-model": ("total", "series", "buckets"),
    "chart-latency": ("calls", "points"),
    "chart-rates": ("calls", "errors", "hits"),
}


@dataclass
class Shown:
    """What the page displayed."""

    dashboard: dict[str, str | None] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    value: dict[str, str | None] = field(default_factory=dict)
    charts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    drawn: dict[str, int] = field(default_factory=dict)  # rects / circles per chart
    top_users_total: str | None = None
    recent_rows: int = 0
    record_fields: dict[str, str] = field(default_factory=dict)
    banners_hidden: bool = False
    console_errors: list[str] = field(default_factory=list)
    hour: dict[str, str | None] = field(default_factory=dict)  # after switching to 1h
    alerts: list[str] = field(default_factory=list)


def chromium(profile: Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1440,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def use_the_page(url: str, profile: Path, screenshot: Path) -> Shown:
    """Log in, wait for the charts, read what is shown, save a screenshot, open a record."""
    shown = Shown()
    driver = chromium(profile)
    try:
        driver.get(f"{url}/ui/login")  # the form POSTs the key: never in an address
        field = driver.find_element(By.NAME, "key")
        field.send_keys(ADMIN_KEY)
        field.submit()
        WebDriverWait(driver, 30).until(
            lambda d: (
                d.find_element(By.ID, "dashboard").get_attribute("data-state")
                in ("ready", "error", "no-store")
            )
        )
        main = driver.find_element(By.ID, "dashboard")
        for attr in ("data-state", "data-period", "data-since", "data-until"):
            shown.dashboard[attr] = main.get_attribute(attr)
        assert driver.current_url.endswith("/ui#period=24h")  # the key left the address bar
        for element_id in TOTAL_IDS:
            element = driver.find_element(By.ID, element_id)
            shown.text[element_id] = element.text
            shown.value[element_id] = element.get_attribute("data-value")
        for chart, attrs in CHART_ATTRS.items():
            svg = driver.find_element(By.ID, chart)
            shown.charts[chart] = {a: svg.get_attribute(f"data-{a}") for a in attrs}
            shown.drawn[chart] = len(svg.find_elements(By.CSS_SELECTOR, "rect, circle"))
        shown.top_users_total = driver.find_element(By.ID, "top-users").get_attribute("data-total")
        shown.alerts = [
            a.text for a in driver.find_elements(By.CSS_SELECTOR, "#alerts .alert-name")
        ]
        rows = driver.find_elements(By.CSS_SELECTOR, "#recent-calls tbody tr")
        shown.recent_rows = len(rows)
        shown.banners_hidden = not any(
            driver.find_element(By.ID, b).is_displayed() for b in ("auth-banner", "message")
        )

        for _ in range(3):  # grow the window until the whole page fits in the screenshot
            page, view = driver.execute_script(
                "return [document.documentElement.scrollHeight, window.innerHeight]"
            )
            if int(view) >= int(page):
                break
            driver.set_window_size(1440, driver.get_window_size()["height"] + int(page) - int(view))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(screenshot))

        rows[0].click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.ID, "record-dialog").get_attribute("open") is not None
        )
        for row in driver.find_elements(By.CSS_SELECTOR, "#record-fields tbody tr"):
            key = row.get_attribute("data-field") or ""
            shown.record_fields[key] = (
                row.find_element(By.TAG_NAME, "td").get_attribute("data-raw") or ""
            )
        driver.save_screenshot(str(screenshot.with_name("ui-record.png")))
        driver.find_element(By.ID, "record-close").click()

        # another period: the same calls, in minute buckets
        driver.find_element(By.CSS_SELECTOR, '#period button[data-period="1h"]').click()
        WebDriverWait(driver, 30).until(
            lambda d: (
                d.find_element(By.ID, "dashboard").get_attribute("data-period") == "1h"
                and d.find_element(By.ID, "dashboard").get_attribute("data-state") == "ready"
            )
        )
        svg = driver.find_element(By.ID, "chart-cost-model")
        shown.hour = {
            "calls": driver.find_element(By.ID, "total-calls").text,
            "cost": driver.find_element(By.ID, "total-cost").get_attribute("data-value"),
            "chart_total": svg.get_attribute("data-total"),
            "buckets": svg.get_attribute("data-buckets"),
        }
        browser_log = cast(Callable[[str], list[dict[str, Any]]], driver.get_log)("browser")
        shown.console_errors = [e["message"] for e in browser_log if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    return shown


def usd(value: Decimal) -> str:
    """The page's money format: half-up to 6 decimals, no trailing zeros."""
    text = format(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP), "f")
    return "$" + (text.rstrip("0").rstrip(".") if "." in text else text)


@skip_without_browser
async def test_the_page_shows_the_stored_totals(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    db = f"sqlite:///{tmp_path / 'records.db'}"
    runner, url = await start_dashboard(sim_url, db)
    try:
        async with aiohttp.ClientSession() as http:
            await run_workload(http, url)
            auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
            await wait_for_calls(http, url, auth, CALLS)
        await runner.app[ALERTS].run_once()  # 3 of 20 calls failed: the error-rate alert fires
        screenshot = ARTIFACTS / "ui.png"
        shown = await asyncio.to_thread(use_the_page, url, tmp_path / "chromium", screenshot)
    finally:
        await runner.cleanup()

    assert shown.dashboard["data-state"] == "ready" and shown.dashboard["data-period"] == "24h"
    since, until = (
        float(shown.dashboard["data-since"] or 0),
        float(shown.dashboard["data-until"] or 0),
    )
    records = await asyncio.to_thread(stored_calls, db, since, until)
    assert len(records) == CALLS
    cost = cost_of(records)
    errors = sum(r.is_error for r in records)
    tokens = sum(r.input_tokens + r.output_tokens for r in records)
    assert errors == len(FAULTY) and cost > 0

    # the numbers shown
    assert shown.text["total-calls"] == str(CALLS)
    assert shown.text["total-errors"] == str(errors)
    assert shown.text["error-rate"] == f"{errors / CALLS * 100:.1f}%"
    assert shown.text["total-cost"] == usd(cost)
    assert Decimal(shown.value["total-cost"] or "nan") == cost
    assert shown.text["total-tokens"] == f"{tokens:,}"
    assert shown.text["cache-hit-rate"] == "0.0%"
    assert shown.text["unpriced-calls"] == str(sum(r.cost_usd is None for r in records))

    # what the charts plotted
    for chart in ("chart-cost-feature", "chart-cost-model"):
        assert Decimal(shown.charts[chart]["total"] or "nan") == cost, chart
        assert shown.charts[chart]["buckets"] in ("48", "49")
        assert shown.drawn[chart] >= 1
    features = {r.feature or "(none)" for r in records if r.cost_usd is not None}
    models = {r.model_requested for r in records if r.cost_usd is not None}
    assert shown.charts["chart-cost-feature"]["series"] == str(len(features))
    assert shown.charts["chart-cost-model"]["series"] == str(len(models))
    assert shown.charts["chart-latency"]["calls"] == str(CALLS)
    assert shown.drawn["chart-latency"] >= 3  # p50, p95, p99 dots
    assert shown.charts["chart-rates"] == {"calls": str(CALLS), "errors": str(errors), "hits": "0"}
    assert Decimal(shown.top_users_total or "nan") == cost
    assert shown.recent_rows == CALLS

    # the whole record of the newest call, as stored
    newest = max(records, key=lambda r: r.ts)
    assert shown.record_fields["request_id"] == newest.request_id
    assert shown.record_fields["model_requested"] == newest.model_requested
    assert shown.record_fields["status"] == str(newest.status)
    assert set(shown.record_fields) == set(newest.to_json())

    hour = shown.hour
    assert hour["calls"] == str(CALLS) and hour["buckets"] in ("60", "61")
    assert Decimal(hour["cost"] or "nan") == Decimal(hour["chart_total"] or "nan") == cost

    assert shown.alerts == ["error_rate"]
    assert shown.banners_hidden
    assert shown.console_errors == []
    assert screenshot.stat().st_size > 10_000


def read_banners(url: str, profile: Path, screenshot: Path) -> dict[str, str]:
    driver = chromium(profile)
    try:
        driver.get(f"{url}/ui")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.ID, "dashboard").get_attribute("data-state") == "no-store"
        )
        driver.save_screenshot(str(screenshot))
        return {b: driver.find_element(By.ID, b).text for b in ("auth-banner", "message")}
    finally:
        driver.quit()


@skip_without_browser
async def test_the_page_says_when_auth_is_off_and_there_is_no_store(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    runner, url = await start_dashboard(sim_url, None)
    try:
        banners = await asyncio.to_thread(
            read_banners, url, tmp_path / "chromium", ARTIFACTS / "ui-no-store.png"
        )
    finally:
        await runner.cleanup()
    assert "Authentication is off" in banners["auth-banner"]
    assert "SLUICE_ADMIN_KEY" in banners["auth-banner"]
    assert "No call-record store" in banners["message"]
