"""Files that kill their task: counted, then taken out.

A task process killed by the OOM killer or a crashing parser raises nothing and runs no
callback, so nothing records why it failed, and the next run takes the same file again (with
every other file of its batch). So, before the heavy work on some landed objects, a task
writes a *marker* naming them (``ledger/attempts/<token>.json``), and deletes it when the
work ends in Python, whether it succeeded or raised. A marker still there afterwards means a
process died while on those objects: each marker naming an object counts one death.

Validation (``steps.validate``) reads the deaths of its files first. A file that reached
``[ingest] max_file_attempts`` is quarantined without being read again; a file with fewer is a
*suspect*, validated alone under a marker of its own, so that a death is charged to the file
that caused it and not to the batch-mates it happened to share a run with. Routing
(``steps.ingest``) reads a heavy file's ids under a marker naming only that file, and claims a
file whose route deaths reached the limit into quarantine without reading its ids. Markers of
objects that have been routed since (every landed object ends up claimed) are swept by the
route step.

Deaths count per step (a marker's ``stage``), they do not add up: each step charges a death by
its own rule. Validation's first pass charges every file of its chunk at once (then isolates the
suspects); routing charges only the file it was reading. Added up, one shared validation death
and one route death would quarantine a batch-mate that never killed anything. Per step, a file
that keeps killing either step is taken out at the limit of that step, and every death is
counted by the step it happened in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from retrain.layout import Layout
from retrain.storage import ObjectNotFound, S3Storage

log = logging.getLogger(__name__)

VALIDATE = "validate"
ROUTE = "route"
# Per step: what it was doing, how its process died, what that means for the file.
_DIED = {
    VALIDATE: (
        "validating it",
        "killed without an error: out of memory, or a crash in a parser",
        "it was not read again",
    ),
    ROUTE: (
        "routing it",
        "killed without an error, while reading its ids: out of memory?",
        "its ids were not checked",
    ),
}


def died_reason(stage: str, deaths: int) -> str:
    """The quarantine reason of a file whose ``stage`` died ``deaths`` times on it."""
    doing, how, meaning = _DIED[stage]
    return f"could not be processed: the task died {deaths} times while {doing} ({how}); {meaning}"


@dataclass(frozen=True)
class Marker:
    key: str
    objects: tuple[str, ...]  # object ids
    stage: str
    started_at: str


class Attempts:
    def __init__(self, storage: S3Storage, layout: Layout) -> None:
        self.storage, self.layout = storage, layout

    def markers(self) -> list[Marker]:
        """Every marker in the bucket: the dead processes' (and any live one's) objects."""
        out = []
        for info in self.storage.iter_objects(self.layout.attempts_prefix):
            try:
                doc = self.storage.get_json(info.key)
            except ObjectNotFound:  # deleted since the listing: its work ended
                continue
            out.append(
                Marker(
                    info.key,
                    tuple(str(o) for o in doc.get("objects") or ()),
                    str(doc.get("stage", "")),
                    str(doc.get("started_at", "")),
                )
            )
        return out

    def deaths(self, object_ids: Iterable[str], stage: str = VALIDATE) -> dict[str, int]:
        """How many times a process of ``stage`` died while working on each of
        ``object_ids`` (a marker without a stage is validation's, the first step to write
        them)."""
        wanted = set(object_ids)
        counts = Counter(
            o
            for m in self.markers()
            if (m.stage or VALIDATE) == stage
            for o in m.objects
            if o in wanted
        )
        return {o: counts.get(o, 0) for o in wanted}

    @contextlib.contextmanager
    def working_on(self, object_ids: Iterable[str], stage: str) -> Iterator[None]:
        """A marker naming ``object_ids`` while the block runs; gone once it ends in Python
        (returning or raising). Only a dead process leaves it behind."""
        objects = sorted(set(object_ids))
        if not objects:
            yield
            return
        key = self.layout.attempt_key(uuid.uuid4().hex)
        self.storage.put_json(
            key,
            {
                "objects": objects,
                "stage": stage,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "pid": os.getpid(),
            },
        )
        try:
            yield
        finally:
            self.storage.delete(key)

    def sweep(self, routed: Iterable[str], is_claimed: Callable[[str], bool]) -> int:
        """Delete the markers whose every object has been routed since (``routed``, or
        ``is_claimed(object_id)`` for objects of other batches); return how many."""
        done = set(routed)
        swept = 0
        for marker in self.markers():
            if all(o in done or is_claimed(o) for o in marker.objects):
                self.storage.delete(marker.key)
                swept += 1
        if swept:
            log.info("swept %d marker(s) of objects routed since their task died", swept)
        return swept
