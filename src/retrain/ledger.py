"""The ingest ledger in the bucket: what became of every landed object, exactly once.

A landed object is *claimed* before anything moves: a create-only write of
``ledger/objects/<object_id>.json`` that fixes its fate (raw/ or quarantine/, the destination key
and the reason). Whoever routes the object later (a retry, the next run after a crash, a second
router racing this one) finds the claim and finishes what it says instead of deciding again, so
an object can never end up in two places, whatever dies when.

Accepted content is recorded by its SHA-256 (``content/``), so the same bytes uploaded again under
any name are recognised as a duplicate; the ids of accepted files (``ids/``) let the
duplicate-id policy name the earlier file. Retract and replay are recorded in ``actions/``.

Id files (staged by validation, promoted to ``ids/`` when their file is accepted) are Parquet with
one text column ``id``, in row groups of at most ``id_overlap.ID_ROW_GROUP`` ids: routing reads
them a row group at a time (:mod:`retrain.id_overlap`), and promotes them with a server-side copy,
so no step holds a file's ids in memory.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from retrain.id_overlap import ID_COLUMN, BatchOverlap, IdFile, IdOverlap, IdWriter, check
from retrain.layout import Layout, format_last_modified, object_id
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

__all__ = ["ID_COLUMN", "BatchOverlap", "Claim", "IdOverlap", "Ledger", "Verdict"]

Verdict = Literal["raw", "quarantine"]


@dataclass(frozen=True)
class Claim:
    """The fate of one landed object, fixed before it moves."""

    object_id: str
    key: str
    etag: str
    last_modified: str
    size: int
    sha256: str | None
    batch_id: str
    verdict: Verdict
    dest_key: str
    reason: str
    decided_at: str
    rows: int | None = None
    report_key: str | None = None  # quarantined: the report written beside the file
    result_key: str | None = None  # the GX validation result, when the file was validated
    duplicate_of: str | None = None  # the raw key of the earlier copy of the same content
    overlapping_ids: int = 0  # ids an earlier accepted file already brought

    @property
    def accepted(self) -> bool:
        return self.verdict == "raw"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    def __init__(self, storage: S3Storage, layout: Layout) -> None:
        self.storage = storage
        self.layout = layout

    # -- claims -------------------------------------------------------------------------------

    def get_claim(self, oid: str) -> Claim | None:
        try:
            return Claim(**self.storage.get_json(self.layout.claim_key(oid)))
        except ObjectNotFound:
            return None

    def claim(self, claim: Claim) -> Claim:
        """Fix ``claim`` unless the object is claimed already; return the claim that holds."""
        try:
            self.storage.put_json(
                self.layout.claim_key(claim.object_id), claim.as_dict(), if_none_match=True
            )
            return claim
        except PreconditionFailed:
            existing = self.get_claim(claim.object_id)
            if existing is None:  # deleted between the two calls: nothing holds, try once more
                return self.claim(claim)
            return existing

    # -- accepted content ---------------------------------------------------------------------

    def accepted_content(self, sha256: str) -> dict[str, Any] | None:
        try:
            return self.storage.get_json(self.layout.content_key(sha256))
        except ObjectNotFound:
            return None

    def record_content(self, claim: Claim) -> None:
        """Mark the claim's bytes as accepted (create-only; the same claim again is a no-op) and
        promote its staged ids to ``ids/`` (a server-side copy: no ids pass through here)."""
        assert claim.sha256 is not None
        record = {
            "sha256": claim.sha256,
            "object_id": claim.object_id,
            "landed_as": claim.key,
            "raw_key": claim.dest_key,
            "batch_id": claim.batch_id,
            "accepted_at": claim.decided_at,
        }
        try:
            self.storage.put_json(self.layout.content_key(claim.sha256), record, if_none_match=True)
        except PreconditionFailed:
            existing = self.accepted_content(claim.sha256)
            if existing is None or existing.get("object_id") != claim.object_id:
                raise
        self._promote_ids(claim.sha256)

    def forget_content(self, sha256: str) -> None:
        """A retracted file's bytes and ids no longer count as ingested."""
        self.storage.delete(self.layout.ids_key(sha256))
        self.storage.delete(self.layout.content_key(sha256))

    # -- ids ----------------------------------------------------------------------------------

    def stage_ids(self, sha256: str, ids: pd.Series | Path | str) -> None:
        """Stage a validated file's ids for routing: a Series (written here), or the path of a
        local id file (column ``id``, row groups of at most ``ID_ROW_GROUP``: see
        ``id_overlap.IdWriter``), uploaded as is, streamed from disk."""
        key = self.layout.staged_ids_key(sha256)
        if isinstance(ids, str | os.PathLike):
            IdFile.open(sha256, Path(ids))  # refuse a file routing could not read, here
            self.storage.upload(key, ids)
        else:
            self.storage.put_bytes(key, _id_parquet(ids))

    def staged_ids(self, sha256: str) -> pd.Series:
        """A staged file's ids, whole in memory (tests and tools; routing streams them)."""
        return self._read_ids(self.layout.staged_ids_key(sha256))

    def accepted_ids(self, sha256: str) -> pd.Series:
        """An accepted file's ids, whole in memory (tests and tools; routing streams them)."""
        return self._read_ids(self.layout.ids_key(sha256))

    def drop_staged_ids(self, sha256: str) -> None:
        self.storage.delete(self.layout.staged_ids_key(sha256))

    def sweep_staged_ids(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> tuple[str, ...]:
        """Delete the staged id files nothing will read again, older than ``older_than``; return
        their keys.

        Validation stages a file's ids (``staging/ids/<sha256>.parquet``) and finishing its
        claim promotes them to ``ids/`` and drops the staged copy; a route killed in between,
        or a file gone from landing/ before it was routed, leaves the staged copy behind. One
        LIST of the staging prefix; only the old files cost a HEAD or two each. Kept: ids
        recorded as accepted but not yet promoted (``content/`` without ``ids/``), and ids of
        an accepted claim whose object is still in landing/ (the next run finishes it by
        copying them). The grace period must outlast an ingest run (validation to routing), and
        the sweep must not run beside a validation: call it from the route task, after routing.
        """
        cutoff = (now or datetime.now(UTC)) - older_than
        prefix = self.layout.staged_ids_key("").removesuffix(".parquet")
        old = [o for o in self.storage.iter_objects(prefix) if o.last_modified <= cutoff]
        unfinished: set[str] | None = None  # read only if an old file has no content record
        swept = []
        for obj in old:
            sha = obj.key.removeprefix(prefix).removesuffix(".parquet")
            if self.storage.exists(self.layout.content_key(sha)):
                if not self.storage.exists(self.layout.ids_key(sha)):
                    continue  # recorded, not yet promoted: finishing copies them from here
            else:
                if unfinished is None:
                    unfinished = self._unfinished_accepted(max(o.last_modified for o in old))
                if sha in unfinished:
                    continue
            self.storage.delete(obj.key)
            swept.append(obj.key)
        return tuple(swept)

    def _unfinished_accepted(self, staged_before: datetime) -> set[str]:
        """The hashes of accepted claims not finished yet: their object is still in landing/
        (it moves only after its content is recorded). Objects landed after ``staged_before``
        cannot own an older staged file, so only the others' claims are read."""
        hashes = set()
        for obj in self.storage.iter_objects(self.layout.s.landing_prefix):
            if obj.last_modified > staged_before:
                continue
            oid = object_id(obj.key, obj.etag, format_last_modified(obj.last_modified))
            claim = self.get_claim(oid)
            if claim is not None and claim.accepted and claim.sha256:
                hashes.add(claim.sha256)
        return hashes

    def batch_overlap(
        self,
        hashes: Sequence[str],
        workdir: Path,
        pool: Executor | None = None,
        *,
        reading: Callable[[str], AbstractContextManager[Any]] | None = None,
    ) -> BatchOverlap:
        """The ids of the staged files ``hashes`` (a batch's, in its order) that accepted files
        brought, or that several of them share (:func:`retrain.id_overlap.check`). Every id file
        is downloaded to ``workdir`` (through ``pool``: concurrently) and read a row group at a
        time; none is read when there is nothing to compare (no history, one file).
        ``reading(sha256)``: the context a heavy batch file is read in (its death marker)."""
        if not hashes:
            return BatchOverlap()
        history = [o.key for o in self.storage.iter_objects(self.layout.ids_prefix)]
        if not history and len(hashes) == 1:
            return BatchOverlap()
        staged = [self.layout.staged_ids_key(sha) for sha in hashes]
        keys = history + staged
        paths = [workdir / f"ids-{n}.parquet" for n in range(len(keys))]
        run = pool.map if pool is not None else map
        got = list(run(self._download_ids, keys, paths))
        n = len(history)
        for key, ok in zip(staged, got[n:], strict=True):
            if not ok:
                raise ObjectNotFound(f"{self.storage.uri(key)}: staged ids missing")
        known = [
            IdFile.open(_sha_of(key), path)
            for key, path, ok in zip(history, paths[:n], got[:n], strict=True)
            if ok
        ]
        batch = [IdFile.open(sha, path) for sha, path in zip(hashes, paths[n:], strict=True)]
        return check(known, batch, workdir / "spill", reading=reading)

    def _download_ids(self, key: str, path: Path) -> bool:
        """``key`` to ``path``; False when it is gone (an accepted file retracted since the
        listing: its ids no longer count)."""
        try:
            self.storage.download(key, path)  # streamed to disk; its return value is not used
        except ObjectNotFound:
            return False
        return True

    def _read_ids(self, key: str) -> pd.Series:
        frame = pd.read_parquet(io.BytesIO(self.storage.get_bytes(key)))
        return frame[ID_COLUMN].astype(str)

    def _promote_ids(self, sha256: str) -> None:
        """Staged ids to ``ids/``, server-side. Copying again is harmless (the same bytes);
        staged ids already gone mean an earlier finish promoted them (and dropped them)."""
        src, dst = self.layout.staged_ids_key(sha256), self.layout.ids_key(sha256)
        try:
            self.storage.copy(src, dst)
        except ObjectNotFound:
            if not self.storage.exists(dst):
                raise

    # -- actions ------------------------------------------------------------------------------

    def record_action(self, kind: str, **fields: Any) -> str:
        now = datetime.now(UTC)
        key = self.layout.action_key(now, kind, secrets.token_hex(3))
        self.storage.put_json(
            key, {"action": kind, "at": now.isoformat(timespec="seconds"), **fields}
        )
        return key

    def actions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` retract/replay records, newest first."""
        keys = sorted(o.key for o in self.storage.iter_objects(self.layout.actions_prefix))
        return [self.storage.get_json(k) for k in reversed(keys[-limit:])]


def _id_parquet(ids: pd.Series) -> bytes:
    """``ids`` as an id file, as validation writes them (``id_overlap.IdWriter``)."""
    buf = io.BytesIO()
    with IdWriter(buf) as writer:
        writer.add(ids)
    return buf.getvalue()


def _sha_of(ids_key: str) -> str:
    return ids_key.rsplit("/", 1)[-1].removesuffix(".parquet")
