"""Open a pnb study in optuna-dashboard with headless Chromium and check that it renders.

Starts `optuna-dashboard` on 127.0.0.1, loads the study's page and its trial list in Debian's
Chromium (`apt-get install chromium`), and checks that the rendered pages show the study name
and the trial user attributes that `pnb compile` records (accuracy, tokens, E³, errors). It
saves a screenshot of each page next to the storage for a person to look at.

Usage:
    python benchmarks/check_dashboard.py --storage sqlite:///optimize/pnb-studies.db --study gsm8k-qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

EXPECTED_ATTRIBUTES = ("accuracy", "avg_tokens", "avg_solver_tokens", "e3", "errors")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"optuna-dashboard did not answer at {url} within {seconds:.0f} s")


def study_id(base_url: str, study_name: str) -> int:
    with urllib.request.urlopen(f"{base_url}/api/studies", timeout=10) as response:
        studies = json.load(response)["study_summaries"]
    for study in studies:
        if study["study_name"] == study_name:
            return int(study["study_id"])
    names = ", ".join(study["study_name"] for study in studies)
    raise SystemExit(f"study {study_name!r} not found in the storage; it has: {names}")


def render(chromium: str, url: str, screenshot: Path) -> str:
    """Return the DOM of `url` after its scripts ran, and save a screenshot of it."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1400,1000"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
        subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    return dom


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", default="sqlite:///optimize/pnb-studies.db", help="Optuna storage URL")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out-dir", default="pnb-results", help="folder for the screenshots (default: pnb-results)")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found; install Debian's package with `apt-get install chromium`")
    dashboard = shutil.which("optuna-dashboard")
    if dashboard is None:
        raise SystemExit("optuna-dashboard not found; install pnb-dspy into this environment")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([dashboard, args.storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"])
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    try:
        wait_for(f"{base_url}/api/studies", 60)
        identifier = study_id(base_url, args.study)
        study_dom = render(chromium, f"{base_url}/dashboard/studies/{identifier}", out_dir / "dashboard-study.png")
        trials_dom = render(chromium, f"{base_url}/dashboard/studies/{identifier}/trials", out_dir / "dashboard-trials.png")
        if args.study not in study_dom:
            failures.append(f"the study page does not show the study name {args.study!r}")
        for attribute in EXPECTED_ATTRIBUTES:
            if attribute not in trials_dom:
                failures.append(f"the trial list does not show the user attribute {attribute!r}")
    finally:
        server.terminate()
        server.wait(timeout=10)

    for failure in failures:
        print(f"FAILED: {failure}")
    checks = 1 + len(EXPECTED_ATTRIBUTES)
    print(f"{checks - len(failures)} passed, {len(failures)} failed (screenshots in {out_dir}/dashboard-*.png)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
