"""What the benchmarks share: the machine block every benchmark's JSON carries (where and with
what the figures were made), where results go, and another revision's tree to run beside."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any


def describe(*packages: str, **extra: Any) -> dict[str, Any]:
    """Platform, Python, cores, memory, date, the given packages' versions, then ``extra``."""
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **{name: version(name) for name in packages},
        **extra,
    }


def save_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (indented, newline-terminated); return its path."""
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out


def export(ref: str, folder: Path) -> Path:
    """The tree of commit ``ref`` under ``folder`` (read from git; the checkout is untouched),
    for a benchmark that runs another revision's code beside the checkout's (``--against``)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder
