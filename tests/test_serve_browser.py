"""``tlspcap serve`` in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromium-driver (nothing is downloaded).

The first test uploads a fixture through the page while the service is made to hold it in both
queues (an upload that never ends takes the only upload slot; a stopped worker takes the only
analysis slot), so the page's progress can be watched at each step, then reads the cause from
the rendered report. The second uploads a capture whose SNI, ALPN and certificate carry markup,
under a file name that is markup too, with the browser told to ignore the Content-Security-Policy:
the escaping alone must keep every script from running.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servekit import REAL, ROOT_PEM, Server, generate
from test_html_report import EVIL_SNI, crafted_capture
from test_serve_api import catch_worker

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SNI = REAL / "sni_missing.pcap"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium under chromedriver (both from Debian)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are not installed (make sysdeps-test)")
    profile = tempfile.mkdtemp(prefix="tlspcap-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)  # fmt: skip
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One analysis at a time, one upload at a time."""
    s = Server(tmp_path_factory.mktemp("browser") / "data", "--workers", "1", "--uploads", "1")
    yield s
    s.stop()


def wait(driver: Any, what: Callable[[Any], Any], timeout: float = 60) -> Any:
    """Wait until ``what(driver)`` is true; its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(what)


def text_of(element_id: str) -> Callable[[Any], str]:
    """The text of an element (empty when it is not there)."""

    def read(driver: Any) -> str:
        found = driver.find_elements(By.ID, element_id)
        return str(found[0].text) if found else ""

    return read


class HeldUpload:
    """An upload through the API that sends its first bytes, then waits: it keeps the
    service's only upload slot until :meth:`release`."""

    def __init__(self, server: Server) -> None:
        self._go = threading.Event()
        self.status = 0
        boundary = "held"
        self._head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="capture"; '
            'filename="held.pcap"\r\n\r\n'
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._thread = threading.Thread(target=self._send, args=(server, boundary))
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        yield self._head
        self._go.wait(120)
        yield SNI.read_bytes() + self._tail

    def _send(self, server: Server, boundary: str) -> None:
        r = server.client.post(
            "/api/v1/analyses",
            content=self._body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        self.status = r.status_code

    def release(self) -> None:
        """Send the rest and wait for the answer."""
        self._go.set()
        self._thread.join(60)


def queue_counts(server: Server) -> dict[str, int]:
    """Running analyses, queued ones, uploads waiting for a slot."""
    body = server.client.get("/api/v1/analyses").json()
    return {k: body[k] for k in ("running", "queued", "uploads_waiting")}


def test_upload_through_the_page_and_read_the_cause(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    big = generate(tmp_path / "big.pcap", "20MB")
    blocker = server.upload(big).json()["id"]
    stopped = catch_worker(server)
    os.kill(stopped, signal.SIGSTOP)  # the only worker hangs: the next analysis must wait
    held = HeldUpload(server)
    try:
        wait(browser, lambda _: queue_counts(server)["running"] == 1, 30)
        browser.get(server.url + "/")
        assert "js" in browser.find_element(By.TAG_NAME, "html").get_attribute("class")
        browser.find_element(By.ID, "capture").send_keys(str(SNI))
        browser.find_element(By.CSS_SELECTOR, "details summary").click()
        browser.find_element(By.NAME, "ca_bundle").send_keys(str(ROOT_PEM))
        assert browser.find_element(By.ID, "chosen").text == "sni_missing.pcap (8.6 kB)"
        browser.find_element(By.ID, "submit").click()
        # the upload: its bar fills as the bytes leave; the service holds it in the upload queue
        wait(browser, lambda d: "Uploaded" in text_of("upload-text")(d))
        bar = browser.find_element(By.ID, "upload-bar")
        assert bar.is_displayed() and float(bar.get_attribute("value")) > 0
        wait(browser, lambda _: queue_counts(server)["uploads_waiting"] == 1)
        assert "/jobs/" not in browser.current_url
        held.release()
        assert held.status == 202
        # the job page: queued behind the held upload's job, behind the stopped analysis
        wait(browser, lambda d: "/jobs/" in d.current_url)
        job = browser.current_url.rsplit("/", 1)[1]
        wait(browser, lambda d: text_of("status-text")(d) == "queued (#2 in line)")
        assert browser.find_element(By.ID, "analysis-bar").get_attribute("value") == "0"
    finally:
        os.kill(stopped, signal.SIGKILL)
        held.release()
    # the queue moves; the page follows it and becomes the report
    wait(browser, lambda d: d.find_elements(By.ID, "read-summary"), 120)
    assert server.status(blocker)["status"] == "failed"
    result = server.status(job)["result"]
    packets = result["captures"][0]["packets"]
    assert text_of("read-summary")(browser).startswith(f"{packets} packets, 8.59 kB read")
    failed = [c for c in result["captures"][0]["connections"] if c["outcome"] == "failed"]
    heads = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "section.conn h3")]
    assert heads and all(h.startswith("FAILED: sni_missing") for h in heads)
    assert len(heads) == len(failed)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert failed[0]["fix"].split(";")[0] in body
    red = browser.find_element(By.CSS_SELECTOR, "section.conn h3 .failed")
    assert red.value_of_css_property("color") == "rgba(176, 0, 32, 1)"  # its style applies
    # the job list
    browser.get(server.url + "/")
    row = browser.find_element(By.CSS_SELECTOR, f"a[href='/jobs/{job}']").find_element(
        By.XPATH, "./ancestor::tr"
    )
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "sni_missing.pcap" and cells[2] == "done"
    assert cells[3] == f"{len(failed)}/{len(result['captures'][0]['connections'])}"
    assert cells[4] == "sni_missing"


def no_alert(driver: Any) -> bool:
    """Whether no alert() dialog is open."""
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_markup_in_a_capture_runs_no_script(server: Server, browser: Any, tmp_path: Path) -> None:
    name = "<img src=x onerror=alert(1)>.pcap"
    evil = crafted_capture(tmp_path / name)
    browser.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})  # the escaping alone
    try:
        browser.get(server.url + "/")
        browser.find_element(By.ID, "capture").send_keys(str(evil))
        browser.find_element(By.ID, "submit").click()
        wait(browser, lambda d: d.find_elements(By.ID, "read-summary"), 120)
        assert no_alert(browser)
        assert browser.title == "tlspcap report"
        assert browser.execute_script("return document.scripts.length") == 0
        assert browser.find_elements(By.CSS_SELECTOR, "img, [onerror], [onload]") == []
        assert browser.find_elements(By.CSS_SELECTOR, "[data-pwned]") == []
        body = browser.find_element(By.TAG_NAME, "body").text
        assert EVIL_SNI.split("\u202e")[0] in body  # shown as text
        assert name in body
        browser.get(server.url + "/")  # the job list shows the name, inert
        assert no_alert(browser)
        assert browser.find_elements(By.CSS_SELECTOR, "#jobs img") == []
        assert browser.find_elements(By.LINK_TEXT, name)
        # the page's own script did run: scripts were possible, the injected ones did not run
        assert "js" in browser.find_element(By.TAG_NAME, "html").get_attribute("class")
    finally:
        browser.execute_cdp_cmd("Page.setBypassCSP", {"enabled": False})
