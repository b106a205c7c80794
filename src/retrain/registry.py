"""Model registry on S3: write-once versions plus one compare-and-swap champion pointer.

Layout under ``models_prefix``::

    <version>/model.txt        LightGBM text model
    <version>/reference.json   training-time feature profile (the drift baseline); only versions
                               that can become champion have one (a challenger does not: its
                               refit for serving is what deploys)
    <version>/holdout_scores.npy
                               a challenger's scores of its holdout rows, in their order, so
                               the decision does not score them again (optional)
    <version>/metadata.json    written last: its presence marks the version complete
    <version>/decision.json    the gate's verdict for this version
    champion.json              {"version", "deployed_at", "reason", "metrics", "previous_version",
                                "kind", "promoted_at", "by"}
    promotions/<at>-<kind>-<version>.json
                               one create-only record per move of the pointer ("deploy" or
                               "rollback"): version, previous_version, kind, reason, at, by,
                               metrics

Versions are never overwritten, so a version id names exactly one model forever. The pointer is
replaced only with a conditional PUT against the ETag the caller read, so two promoters racing
cannot both win and neither can silently undo the other. A promotion record is written after
the pointer moved (the loser of a race records nothing) and is a pure function of the pointer's
content, so a crash in between is repaired by the next promote or rollback, and
:meth:`ModelRegistry.promotions` shows the current champion's move either way.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"
HOLDOUT_SCORES_FILE = "holdout_scores.npy"
DECISION_FILE = "decision.json"
CHAMPION_FILE = "champion.json"
PROMOTIONS_DIR = "promotions"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED = frozenset({PROMOTIONS_DIR})  # names under models/ that are not versions
_PROMOTION_RE = re.compile(
    r"^(?P<stamp>\d{8}T\d{12}Z)-(?P<kind>deploy|rollback)-(?P<version>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"\.json$"
)
Kind = Literal["deploy", "rollback"]
DEPLOY: Kind = "deploy"
ROLLBACK: Kind = "rollback"


class RegistryError(RuntimeError):
    """Base class for registry failures."""


class VersionExists(RegistryError):
    """The version was already saved with different content (versions are write-once)."""


class UnknownVersion(RegistryError, KeyError):
    """No complete version with this id exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RollbackRefused(RegistryError):
    """Nothing to roll back, nothing to roll back to, or a target that cannot be restored (the
    champion already, or a version that never was champion); nothing was written."""


class ChampionChanged(RegistryError):
    """The champion pointer moved since the caller read it; nothing was written."""

    def __init__(self, expected: Champion | None, current: Champion | None) -> None:
        self.expected = expected
        self.current = current
        exp = expected.version if expected else None
        cur = current.version if current else None
        super().__init__(f"champion changed: expected {exp!r}, now {cur!r}")


@dataclass(frozen=True)
class VersionRef:
    version: str
    prefix: str
    model_key: str
    metadata_key: str
    reference_key: str


@dataclass(frozen=True)
class Champion:
    version: str
    deployed_at: str  # ISO 8601, UTC
    metrics: dict[str, Any] = field(hash=False)
    etag: str  # of champion.json as read; the token for the next promote
    reason: str = ""
    previous_version: str | None = None
    kind: str = DEPLOY  # how it became champion: "deploy" (the gate) or "rollback" (a person)
    promoted_at: str = ""  # ISO 8601 with microseconds; names the promotion record
    by: str = ""  # who rolled back ("" for the pipeline's deploys)


@dataclass(frozen=True)
class Promotion:
    """One move of the champion pointer, as recorded under ``promotions/``."""

    version: str
    previous_version: str | None
    kind: str  # "deploy" | "rollback"
    reason: str
    at: str  # ISO 8601, UTC
    metrics: dict[str, Any] = field(hash=False)
    by: str = ""
    key: str = ""  # of the record ("" if the record is missing and this was read off the pointer)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_version(version: str) -> str:
    if not _VERSION_RE.match(version) or version in _RESERVED:
        raise ValueError(f"invalid model version {version!r}")
    return version


def _parse_time(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class ModelRegistry:
    def __init__(self, storage: S3Storage, models_prefix: str = "models/") -> None:
        if models_prefix and not models_prefix.endswith("/"):
            models_prefix += "/"
        self.storage = storage
        self.prefix = models_prefix

    @property
    def champion_key(self) -> str:
        return f"{self.prefix}{CHAMPION_FILE}"

    @property
    def promotions_prefix(self) -> str:
        return f"{self.prefix}{PROMOTIONS_DIR}/"

    def promotion_key(self, at: datetime | str, kind: str, version: str) -> str:
        """``promotions/<YYYYMMDDTHHMMSSffffffZ>-<kind>-<version>.json``: sorts by time."""
        if kind not in (DEPLOY, ROLLBACK):
            raise ValueError(f"promotion kind must be deploy or rollback, got {kind!r}")
        when = _parse_time(at) if isinstance(at, str) else at.astimezone(UTC)
        return (
            f"{self.promotions_prefix}{when:%Y%m%dT%H%M%S%fZ}-{kind}-{_check_version(version)}.json"
        )

    def key(self, version: str, name: str) -> str:
        return f"{self.prefix}{_check_version(version)}/{name}"

    @staticmethod
    def new_version(now: datetime | None = None) -> str:
        """``YYYYMMDDTHHMMSSZ-xxxxxx``: sorts by creation time, random suffix keeps it unique."""
        now = now or datetime.now(UTC)
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    # -- versions -----------------------------------------------------------------------------

    def _put_once(self, key: str, data: bytes, content_type: str) -> None:
        """Create ``key``; an identical existing object is fine (a retried task), else refuse."""
        try:
            self.storage.put_bytes(key, data, content_type=content_type, if_none_match=True)
        except PreconditionFailed:
            try:
                same = self.storage.get_bytes(key) == data
            except ObjectNotFound:
                same = False
            if not same:
                raise VersionExists(f"{self.storage.uri(key)} exists with other content") from None

    def save_version(
        self,
        version: str,
        *,
        model_text: str,
        metadata: dict[str, Any],
        reference_profile: dict[str, Any] | None,
        holdout_scores: np.ndarray | None = None,
    ) -> VersionRef:
        """Write the version's files once. Re-saving identical content is an idempotent no-op."""
        ref = VersionRef(
            version=version,
            prefix=f"{self.prefix}{_check_version(version)}/",
            model_key=self.key(version, MODEL_FILE),
            metadata_key=self.key(version, METADATA_FILE),
            reference_key=self.key(version, REFERENCE_FILE),
        )
        self._put_once(ref.model_key, model_text.encode(), "text/plain; charset=utf-8")
        if reference_profile is not None:
            self._put_once(ref.reference_key, _json_bytes(reference_profile), "application/json")
        if holdout_scores is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(holdout_scores, dtype=np.float64), allow_pickle=False)
            key = self.key(version, HOLDOUT_SCORES_FILE)
            self._put_once(key, buf.getvalue(), "application/octet-stream")
        self._put_once(ref.metadata_key, _json_bytes(metadata), "application/json")  # commit mark
        return ref

    def version_exists(self, version: str) -> bool:
        return self.storage.exists(self.key(version, METADATA_FILE))

    def _load(self, version: str, name: str) -> bytes:
        try:
            return self.storage.get_bytes(self.key(version, name))
        except ObjectNotFound as exc:
            raise UnknownVersion(f"model version {version!r}: {name} not found") from exc

    def load_model_text(self, version: str) -> str:
        return self._load(version, MODEL_FILE).decode()

    def load_metadata(self, version: str) -> dict[str, Any]:
        return _json_loads(self._load(version, METADATA_FILE))

    def load_reference(self, version: str) -> dict[str, Any]:
        return _json_loads(self._load(version, REFERENCE_FILE))

    def load_holdout_scores(self, version: str) -> np.ndarray | None:
        """The scores saved with the version (None: it has none)."""
        try:
            data = self.storage.get_bytes(self.key(version, HOLDOUT_SCORES_FILE))
        except ObjectNotFound:
            return None
        return np.load(io.BytesIO(data), allow_pickle=False)

    def list_versions(self) -> list[str]:
        """Complete versions (those with metadata.json), oldest first."""
        versions = set()
        for obj in self.storage.list_objects(self.prefix):
            rest = obj.key[len(self.prefix) :]
            version, _, name = rest.partition("/")
            if name == METADATA_FILE:
                versions.add(version)
        return sorted(versions)

    def record_decision(self, version: str, decision: dict[str, Any]) -> str:
        """Store the gate's verdict next to the model (latest write wins); return the key."""
        if not self.version_exists(version):
            raise UnknownVersion(f"model version {version!r} does not exist")
        key = self.key(version, DECISION_FILE)
        self.storage.put_json(key, decision)
        return key

    def load_decision(self, version: str) -> dict[str, Any] | None:
        try:
            return self.storage.get_json(self.key(version, DECISION_FILE))
        except ObjectNotFound:
            return None

    def newest_decision(
        self, *, now: datetime | None = None, days: tuple[int, ...] = (1, 7, 31, 366)
    ) -> dict[str, Any] | None:
        """The newest decision record of a version the gate judged (a refit's copy is skipped),
        among versions named by :meth:`new_version` in the last ``days[-1]`` days; None if none.

        Version ids sort by time, so the listing starts at a point in time and widens step by
        step: the cost does not grow with the number of versions kept."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        for window in days:
            start = f"{self.prefix}{now - timedelta(days=window):%Y%m%dT%H%M%SZ}"
            found = []
            for obj in self.storage.iter_objects(self.prefix, start_after=start):
                rest = obj.key[len(self.prefix) :]
                if not rest[:1].isdigit():  # champion.json, promotions/: past the versions
                    break
                version, _, name = rest.partition("/")
                if name == DECISION_FILE:
                    found.append(version)
            for version in sorted(found, reverse=True):
                record = self.load_decision(version)
                if record is not None and record.get("version", version) == version:
                    return record
        return None

    # -- champion pointer ---------------------------------------------------------------------

    def champion(self) -> Champion | None:
        try:
            doc, etag = self.storage.get_json_with_etag(self.champion_key)
        except ObjectNotFound:
            return None
        return Champion(
            version=doc["version"],
            deployed_at=doc.get("deployed_at", ""),
            metrics=dict(doc.get("metrics") or {}),
            etag=etag,
            reason=doc.get("reason", ""),
            previous_version=doc.get("previous_version"),
            kind=doc.get("kind", DEPLOY),
            promoted_at=doc.get("promoted_at") or doc.get("deployed_at", ""),
            by=doc.get("by", ""),
        )

    def promote(
        self,
        version: str,
        *,
        expected: Champion | None,
        reason: str,
        metrics: dict[str, Any],
        by: str = "",
        now: datetime | None = None,
    ) -> Champion:
        """Point champion.json at ``version`` iff it still is ``expected`` (None: no champion),
        and record the move as a "deploy" promotion (``by``: who approved it, if anyone).

        Raises ``ChampionChanged`` when another writer got there first; the pointer is then
        whatever that writer left, untouched by this call, and nothing is recorded.
        """
        if not self.version_exists(version):
            raise UnknownVersion(f"cannot promote {version!r}: version does not exist")
        return self._swap(version, expected, DEPLOY, reason, metrics, by=by, now=now)

    def rollback(
        self,
        version: str | None = None,
        *,
        reason: str,
        expected: Champion | None = None,
        by: str = "",
        now: datetime | None = None,
    ) -> Champion:
        """Restore an earlier champion through the same compare-and-swap as :meth:`promote`,
        recorded as a "rollback" promotion.

        ``version`` None: the default target (:meth:`rollback_target`), the version the current
        champion replaced when it was deployed. ``expected``: the champion the caller looked at
        (None: read it now); if the pointer moved since, ``ChampionChanged`` and nothing is
        written. Only a version that was champion before can be restored, so a model the gate
        held never becomes champion this way. Raises ``UnknownVersion`` for a version that does
        not exist and ``RollbackRefused`` for no champion, nothing to roll back to, the current
        champion, or a version that never was champion.
        """
        if not reason.strip():
            raise RollbackRefused("a rollback needs a reason")
        current = expected if expected is not None else self.champion()
        if current is None:
            raise RollbackRefused("no champion deployed: nothing to roll back")
        if version is None:
            version = self.rollback_target(current)
            if version is None:
                raise RollbackRefused(
                    f"nothing to roll back to: {current.version} was the first champion"
                )
        if not _VERSION_RE.match(version) or version in _RESERVED:
            raise UnknownVersion(f"cannot roll back to {version!r}: not a model version")
        if not self.version_exists(version):
            raise UnknownVersion(f"cannot roll back to {version!r}: version does not exist")
        if version == current.version:
            raise RollbackRefused(f"{version} is the champion already")
        if version not in self.former_champions():
            raise RollbackRefused(
                f"cannot roll back to {version}: it never was champion (a held model is never "
                "deployed; `retrain models` lists the promotions)"
            )
        metrics = dict((self.load_metadata(version).get("metrics")) or {})
        return self._swap(version, current, ROLLBACK, reason, metrics, by=by, now=now)

    def rollback_target(self, current: Champion | None = None) -> str | None:
        """The version a rollback restores by default: the one the current champion replaced
        when it was *deployed*. For a champion that a rollback brought back, that is its
        original deploy's predecessor, so repeated rollbacks walk back through the deploys
        instead of toggling between two versions."""
        current = current if current is not None else self.champion()
        if current is None:
            return None
        if current.kind == DEPLOY:
            return current.previous_version
        deploys = [
            key
            for key, kind, version in self._promotion_keys()
            if kind == DEPLOY and version == current.version
        ]
        if not deploys:  # no record of its deploy (older pointer): the pointer's own answer
            return current.previous_version
        return self._read_promotion(deploys[-1]).previous_version

    def former_champions(self) -> set[str]:
        """Every version the pointer ever named (one listing, no reads)."""
        versions = {version for _, _, version in self._promotion_keys()}
        if (current := self.champion()) is not None:
            versions.add(current.version)
            if current.previous_version:
                versions.add(current.previous_version)
        return versions

    def was_deployed(self, version: str) -> bool:
        """Whether the gate ever deployed ``version`` (a "deploy" promotion names it). A held
        version never was; a version only ever restored by a rollback is not either."""
        _check_version(version)
        if any(k == DEPLOY and v == version for _, k, v in self._promotion_keys()):
            return True
        current = self.champion()  # a pointer whose record is not written yet
        return current is not None and current.version == version and current.kind == DEPLOY

    def promotions(self, limit: int | None = None) -> list[Promotion]:
        """Every recorded move of the pointer, newest first (``limit``: only the newest ones).

        The current champion's move is included even if its record is missing (a crash right
        after the swap), read off the pointer."""
        keys = [key for key, _, _ in self._promotion_keys()][::-1]
        out: list[Promotion] = []
        current = self.champion()
        if current is not None and current.promoted_at:
            own = self.promotion_key(current.promoted_at, current.kind, current.version)
            if own not in keys:
                out.append(_promotion_of(current, key=""))
        wanted = keys if limit is None else keys[: max(limit - len(out), 0)]
        return out + [self._read_promotion(k) for k in wanted]

    def _promotion_keys(self) -> list[tuple[str, str, str]]:
        """(key, kind, version) of every promotion record, oldest first."""
        found = []
        for obj in self.storage.list_objects(self.promotions_prefix):
            match = _PROMOTION_RE.match(obj.key[len(self.promotions_prefix) :])
            if match:
                found.append((obj.key, match["kind"], match["version"]))
        return sorted(found)

    def _read_promotion(self, key: str) -> Promotion:
        doc = self.storage.get_json(key)
        return Promotion(
            version=doc["version"],
            previous_version=doc.get("previous_version"),
            kind=doc.get("kind", DEPLOY),
            reason=doc.get("reason", ""),
            at=doc.get("at", ""),
            metrics=dict(doc.get("metrics") or {}),
            by=doc.get("by", ""),
            key=key,
        )

    def _record(self, champion: Champion, *, repair: bool = False) -> str:
        """Write the promotion record of ``champion`` (create-only; the same content again is
        fine, so repairing a missing record is safe to repeat). ``repair``: only if missing."""
        key = self.promotion_key(champion.promoted_at, champion.kind, champion.version)
        if repair and self.storage.exists(key):
            return key
        doc = _promotion_of(champion, key="").as_dict()
        del doc["key"]
        self._put_once(key, _json_bytes(doc), "application/json")
        return key

    def _swap(
        self,
        version: str,
        expected: Champion | None,
        kind: Kind,
        reason: str,
        metrics: dict[str, Any],
        *,
        by: str = "",
        now: datetime | None = None,
    ) -> Champion:
        """The compare-and-swap both promote and rollback go through, then the record."""
        if expected is not None and expected.promoted_at:
            self._record(expected, repair=True)  # a crash between an earlier swap and its record
        when = (now or datetime.now(UTC)).astimezone(UTC)
        deployed_at = when.isoformat(timespec="seconds")
        promoted_at = when.isoformat(timespec="microseconds")
        previous = expected.version if expected else None
        doc = {
            "version": version,
            "deployed_at": deployed_at,
            "reason": reason,
            "metrics": metrics,
            "previous_version": previous,
            "kind": kind,
            "promoted_at": promoted_at,
            "by": by,
        }
        try:
            if expected is None:
                etag = self.storage.put_json(self.champion_key, doc, if_none_match=True)
            else:
                etag = self.storage.put_json(self.champion_key, doc, if_match=expected.etag)
        except PreconditionFailed:
            raise ChampionChanged(expected, self.champion()) from None
        champion = Champion(
            version=version,
            deployed_at=deployed_at,
            metrics=dict(metrics),
            etag=etag,
            reason=reason,
            previous_version=previous,
            kind=kind,
            promoted_at=promoted_at,
            by=by,
        )
        self._record(champion)
        return champion


def _promotion_of(champion: Champion, *, key: str) -> Promotion:
    return Promotion(
        version=champion.version,
        previous_version=champion.previous_version,
        kind=champion.kind,
        reason=champion.reason,
        at=champion.promoted_at,
        metrics=dict(champion.metrics),
        by=champion.by,
        key=key,
    )


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _json_loads(data: bytes) -> dict[str, Any]:
    return json.loads(data)
