"""Take the README's screenshots of ``tlspcap serve`` with Debian's headless Chromium.

Usage: ``python docs/serve_screenshot.py`` (writes ``docs/serve-jobs.png`` and
``docs/serve-report.png``). It starts the service on a free loopback port with a temporary data
directory, uploads a few shipped fixtures through the API with the fixtures' CA bundle, waits
for the verdicts, and points ``chromium --headless --screenshot`` at the job list and at one
job's page.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
REAL = REPO / "fixtures" / "real"
CAPTURES = [
    ("sni_missing.pcap", None),
    ("expired_curl.pcap", None),
    ("hostname_mismatch_python.pcap", "hostname_mismatch_python.keylog"),
    ("tls13_ok_curl_nginx.pcap", None),
    ("incomplete_chain_curl.pcap", None),
]


def shoot(url: str, out: Path, height: int) -> None:
    """A 1200-pixel-wide screenshot of ``url``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}",
             f"--window-size=1200,{height}", f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "serve.out"
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tlspcap", "serve", "--bind", "127.0.0.1:0",
                 "--data", f"{tmp}/data", "--workers", "2"],
                stdout=stdout, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            while not out.read_text().endswith("\n"):
                time.sleep(0.05)
            url = out.read_text().split("listening on ", 1)[1].split(" ", 1)[0].rstrip("/")
            client = httpx.Client(base_url=url, timeout=60)
            ids = []
            for name, keylog in CAPTURES:
                parts = [
                    ("capture", (name, (REAL / name).read_bytes())),
                    ("ca_bundle", ("root.pem", (REAL / "certs" / "root.pem").read_bytes())),
                ]
                if keylog:
                    parts.append(("keylog", (keylog, (REAL / keylog).read_bytes())))  # fmt: skip
                ids.append(client.post("/api/v1/analyses", files=parts).json()["id"])
                time.sleep(1.1)  # distinct upload times in the list
            for job in ids:
                while client.get(f"/api/v1/analyses/{job}").json()["status"] != "done":
                    time.sleep(0.1)
            shoot(url + "/", REPO / "docs" / "serve-jobs.png", 760)
            shoot(f"{url}/jobs/{ids[0]}", REPO / "docs" / "serve-report.png", 900)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
