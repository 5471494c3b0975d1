"""Headless Chromium (Debian's package; `make test` installs it) for the report tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]


def chromium() -> str:
    """The browser's path; a missing browser fails the test (no silent skip)."""
    path = shutil.which("chromium")
    assert path, "the report tests need Debian's chromium: `make test` installs it (apt-get install chromium)"
    return path


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    result = subprocess.run([chromium(), *FLAGS, "--dump-dom", page.resolve().as_uri()], capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    subprocess.run([chromium(), *FLAGS, f"--window-size={width},{height}", f"--screenshot={out}",
                    page.resolve().as_uri()], capture_output=True, timeout=120, check=True)
    return out


def figure_verdicts(dom: str) -> dict[str, str]:
    """``{figure id: "drawn" | "blank" | "undecoded"}`` from the report's in-page self-check."""
    match = re.search(r'data-figures-drawn="([^"]*)"', dom)
    assert match, "the report's self-check did not run (no data-figures-drawn attribute on <body>)"
    return {item.split(":")[0]: item.split(":")[1] for item in match.group(1).split()}
