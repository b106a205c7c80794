"""Model registry on S3: write-once versions plus one compare-and-swap champion pointer.

Layout under ``models_prefix``::

    <version>/model.txt        LightGBM text model
    <version>/reference.json   training-time feature profile (the drift baseline)
    <version>/metadata.json    written last: its presence marks the version complete
    <version>/decision.json    the gate's verdict for this version
    champion.json              {"version", "deployed_at", "reason", "metrics", "previous_version"}

Versions are never overwritten, so a version id names exactly one model forever. The pointer is
replaced only with a conditional PUT against the ETag the caller read, so two promoters racing
cannot both win and neither can silently undo the other.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"
DECISION_FILE = "decision.json"
CHAMPION_FILE = "champion.json"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RegistryError(RuntimeError):
    """Base class for registry failures."""


class VersionExists(RegistryError):
    """The version was already saved with different content (versions are write-once)."""


class UnknownVersion(RegistryError, KeyError):
    """No complete version with this id exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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


def _check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise ValueError(f"invalid model version {version!r}")
    return version


class ModelRegistry:
    def __init__(self, storage: S3Storage, models_prefix: str = "models/") -> None:
        if models_prefix and not models_prefix.endswith("/"):
            models_prefix += "/"
        self.storage = storage
        self.prefix = models_prefix

    @property
    def champion_key(self) -> str:
        return f"{self.prefix}{CHAMPION_FILE}"

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
        reference_profile: dict[str, Any],
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
        self._put_once(ref.reference_key, _json_bytes(reference_profile), "application/json")
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
        )

    def promote(
        self,
        version: str,
        *,
        expected: Champion | None,
        reason: str,
        metrics: dict[str, Any],
        now: datetime | None = None,
    ) -> Champion:
        """Point champion.json at ``version`` iff it still is ``expected`` (None: no champion).

        Raises ``ChampionChanged`` when another writer got there first; the pointer is then
        whatever that writer left, untouched by this call.
        """
        if not self.version_exists(version):
            raise UnknownVersion(f"cannot promote {version!r}: version does not exist")
        deployed_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        previous = expected.version if expected else None
        doc = {
            "version": version,
            "deployed_at": deployed_at,
            "reason": reason,
            "metrics": metrics,
            "previous_version": previous,
        }
        try:
            if expected is None:
                etag = self.storage.put_json(self.champion_key, doc, if_none_match=True)
            else:
                etag = self.storage.put_json(self.champion_key, doc, if_match=expected.etag)
        except PreconditionFailed:
            raise ChampionChanged(expected, self.champion()) from None
        return Champion(
            version=version,
            deployed_at=deployed_at,
            metrics=dict(metrics),
            etag=etag,
            reason=reason,
            previous_version=previous,
        )


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _json_loads(data: bytes) -> dict[str, Any]:
    return json.loads(data)
