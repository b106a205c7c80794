"""Fault injection for the end-to-end tests: a task process that dies on one file, as it would
under the OOM killer, without a file big enough to really exhaust the machine's memory.

Off unless ``RETRAIN_FAULT_KILL_ON`` is set in the task's environment (only test stacks set
it): then validating a file whose first 64 KiB contain that text SIGKILLs the process. No
Python error is raised and no callback runs, exactly like the kernel's OOM killer.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

ENV = "RETRAIN_FAULT_KILL_ON"
HEAD = 64 * 1024

log = logging.getLogger(__name__)


def kill_on_marker(source: bytes | Path, key: str) -> None:
    """SIGKILL this process if the marker is set and in the file's (bytes' or local path's)
    first HEAD bytes; only those are read."""
    marker = os.environ.get(ENV, "")
    if not marker:
        return
    if isinstance(source, bytes):
        head = source[:HEAD]
    else:
        with source.open("rb") as f:
            head = f.read(HEAD)
    if marker.encode() in head:
        log.error("%s holds the fault marker %s: killing this process (SIGKILL)", key, ENV)
        os.kill(os.getpid(), signal.SIGKILL)
