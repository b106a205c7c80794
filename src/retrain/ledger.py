"""The ingest ledger in the bucket: what became of every landed object, exactly once.

A landed object is *claimed* before anything moves: a create-only write of
``ledger/objects/<object_id>.json`` that fixes its fate (raw/ or quarantine/, the destination key
and the reason). Whoever routes the object later (a retry, the next run after a crash, a second
router racing this one) finds the claim and finishes what it says instead of deciding again, so
an object can never end up in two places, whatever dies when.

Accepted content is recorded by its SHA-256 (``content/``), so the same bytes uploaded again under
any name are recognised as a duplicate; the ids of accepted files (``ids/``) let the
duplicate-id policy name the earlier file. Retract and replay are recorded in ``actions/``.
"""

from __future__ import annotations

import io
import secrets
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from retrain.layout import Layout, format_last_modified, object_id
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

if TYPE_CHECKING:
    import pyarrow as pa

Verdict = Literal["raw", "quarantine"]
ID_COLUMN = "id"


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


@dataclass(frozen=True)
class IdOverlap:
    """Ids of a new file that accepted files already brought."""

    count: int
    examples: tuple[str, ...]
    earlier: tuple[str, ...] = field(default=())  # content hashes of the files that had them


class IdIndex:
    """Every id of every accepted file, with the content hash of the file that brought it."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self._frame = (
            frame if frame is not None else pd.DataFrame({ID_COLUMN: [], "sha256": []}, dtype=str)
        )

    def __len__(self) -> int:
        return len(self._frame)

    def overlap(self, ids: pd.Series, examples: int = 5) -> IdOverlap:
        import pyarrow.compute as pc

        # pyarrow's hash set: pandas' isin on text builds a Python scalar per value (7 s for a
        # file of 1M ids)
        known = _text_array(self._frame[ID_COLUMN])
        hits = self._frame[pc.is_in(known, value_set=_text_array(ids)).to_numpy(False)]
        if hits.empty:
            return IdOverlap(0, ())
        distinct = hits[ID_COLUMN].drop_duplicates()
        return IdOverlap(
            count=len(distinct),
            examples=tuple(distinct.head(examples)),
            earlier=tuple(hits["sha256"].drop_duplicates()),
        )

    def add(self, ids: pd.Series, sha256: str) -> None:
        new = pd.DataFrame({ID_COLUMN: ids.astype(str).to_numpy(), "sha256": sha256})
        self._frame = pd.concat([self._frame, new], ignore_index=True)


def _text_array(values: pd.Series) -> pa.Array:
    """``values`` as text, in one Arrow type (pandas keeps text as ``string`` or
    ``large_string``)."""
    import pyarrow as pa

    return pa.array(values.astype(str).array).cast(pa.large_string())


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

    def record_content(self, claim: Claim, ids: pd.Series | None = None) -> None:
        """Mark the claim's bytes as accepted (create-only; the same claim again is a no-op) and
        keep its ids: ``ids`` when the caller has them, else the staged copy."""
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
        if ids is not None:
            self._write_ids(self.layout.ids_key(claim.sha256), ids)
        else:
            self._copy_if_missing(
                self.layout.staged_ids_key(claim.sha256), self.layout.ids_key(claim.sha256)
            )

    def forget_content(self, sha256: str) -> None:
        """A retracted file's bytes and ids no longer count as ingested."""
        self.storage.delete(self.layout.ids_key(sha256))
        self.storage.delete(self.layout.content_key(sha256))

    # -- ids ----------------------------------------------------------------------------------

    def stage_ids(self, sha256: str, ids: pd.Series) -> None:
        self._write_ids(self.layout.staged_ids_key(sha256), ids)

    def _write_ids(self, key: str, ids: pd.Series) -> None:
        buf = io.BytesIO()
        pd.DataFrame({ID_COLUMN: ids.astype(str).reset_index(drop=True)}).to_parquet(
            buf, index=False
        )
        self.storage.put_bytes(key, buf.getvalue())

    def staged_ids(self, sha256: str) -> pd.Series:
        return self._read_ids(self.layout.staged_ids_key(sha256))

    def accepted_ids(self, sha256: str) -> pd.Series:
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

    def id_index(self, pool: Executor | None = None) -> IdIndex:
        """All ids of accepted files. Reads one small Parquet file per accepted file (through
        ``pool`` when given, concurrently)."""
        keys = [o.key for o in self.storage.iter_objects(self.layout.ids_prefix)]
        reads = pool.map(self._read_ids, keys) if pool is not None else map(self._read_ids, keys)
        frames = []
        for key, ids in zip(keys, reads, strict=True):
            sha = key.rsplit("/", 1)[-1].removesuffix(".parquet")
            frames.append(pd.DataFrame({ID_COLUMN: ids.to_numpy(), "sha256": sha}))
        if not frames:
            return IdIndex()
        return IdIndex(pd.concat(frames, ignore_index=True))

    def _read_ids(self, key: str) -> pd.Series:
        frame = pd.read_parquet(io.BytesIO(self.storage.get_bytes(key)))
        return frame[ID_COLUMN].astype(str)

    def _copy_if_missing(self, src: str, dst: str) -> None:
        if self.storage.exists(dst):
            return
        try:
            self.storage.put_bytes(dst, self.storage.get_bytes(src))
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
