"""Taking data back out, and putting it back in: ``retrain retract`` and ``retrain replay``.

Both are recorded in the ledger (who, when, why, what moved), so ``retrain status`` can say why a
file that was once accepted no longer counts, or why a quarantined file came back.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from retrain.config import Config
from retrain.layout import REPORT_SUFFIX, Layout
from retrain.ledger import Ledger
from retrain.storage import S3Storage

log = logging.getLogger(__name__)


class CurationError(ValueError):
    """The retract or replay target is not what it must be; nothing was changed."""


def current_user() -> str:
    """Who ran the command, for the record (``$RETRAIN_USER`` overrides the login name)."""
    return os.environ.get("RETRAIN_USER") or getpass.getuser()


@dataclass(frozen=True)
class Retraction:
    raw_keys: tuple[str, ...]
    quarantine_keys: tuple[str, ...]
    feature_keys: tuple[str, ...]
    action_key: str


def resolve_raw(storage: S3Storage, cfg: Config, target: str) -> list[str]:
    """The raw keys ``target`` names: a raw key, a landed name (``customers.csv``, matched against
    the name inside each batch), or a batch id (``batch=<id>`` or the bare id)."""
    layout = Layout.of(cfg)
    keys = [o.key for o in storage.iter_objects(cfg.storage.raw_prefix)]
    if target in keys:
        return [target]
    batch = target.removeprefix("batch=")
    by_batch = [k for k in keys if layout.batch_of(k) == batch]
    if by_batch:
        return by_batch
    return [k for k in keys if layout.name_in_partition(k) == target.removeprefix("landing/")]


def retract(
    storage: S3Storage, cfg: Config, target: str, *, reason: str, who: str | None = None
) -> Retraction:
    """Move accepted files (raw object and features) to quarantine/ with the reason.

    Their bytes and ids no longer count as ingested, so the same file can be replayed once it
    is fixed. The caller re-emits the ``features`` asset so that a retrain runs without them.
    """
    if not reason.strip():
        raise CurationError("a retraction needs a reason (--reason)")
    raw_keys = resolve_raw(storage, cfg, target)
    if not raw_keys:
        raise CurationError(
            f"{target!r} names no accepted file under {storage.uri(cfg.storage.raw_prefix)} "
            "(give a raw key, a file name as it landed, or a batch id)"
        )
    layout, ledger = Layout.of(cfg), Ledger(storage, Layout.of(cfg))
    who = who or current_user()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    moved, features = [], []
    for raw_key in raw_keys:
        sha = hashlib.sha256(storage.get_bytes(raw_key)).hexdigest()
        dest = layout.retracted_key(raw_key)
        storage.put_json(
            layout.report_key(dest),
            {
                "file": raw_key,
                "quarantined_as": dest,
                "reason": f"retracted by {who}: {reason}",
                "retracted": {"by": who, "at": at, "reason": reason, "raw_key": raw_key},
                "sha256": sha,
            },
        )
        feature_key = layout.feature_key(raw_key)
        storage.delete(feature_key)  # first: a crash after this leaves raw/ to retract again
        ledger.forget_content(sha)
        storage.move(raw_key, dest)
        moved.append(dest)
        features.append(feature_key)
        log.info("retracted %s -> %s", raw_key, dest)
    action = ledger.record_action(
        "retract",
        by=who,
        reason=reason,
        target=target,
        raw_keys=raw_keys,
        quarantine_keys=moved,
        feature_keys=features,
    )
    return Retraction(tuple(raw_keys), tuple(moved), tuple(features), action)


@dataclass(frozen=True)
class Replay:
    quarantine_key: str
    landing_key: str
    action_key: str


def replay(
    storage: S3Storage,
    cfg: Config,
    quarantine_key: str,
    *,
    reason: str = "",
    who: str | None = None,
) -> Replay:
    """Put a quarantined file back into landing/ (under the name it landed with), after it was
    fixed; ingest takes it as a new upload. Its report stays in quarantine/ as history."""
    q = cfg.storage.quarantine_prefix
    if not quarantine_key.startswith(q) or quarantine_key.endswith(REPORT_SUFFIX):
        raise CurationError(f"{quarantine_key!r} is not a quarantined file under {q}")
    if not storage.exists(quarantine_key):
        raise CurationError(f"{storage.uri(quarantine_key)} does not exist")
    layout = Layout.of(cfg)
    name = layout.name_in_partition(quarantine_key)
    if name.startswith(("_unsafe/", "_too_long/")):
        name = name.replace("/", "-", 1)  # its original key was unsafe: land it under a safe one
    landing_key = layout.landing_key(name)
    if storage.exists(landing_key):
        raise CurationError(f"{storage.uri(landing_key)} exists: wait until it is processed")
    who = who or current_user()
    storage.move(quarantine_key, landing_key)
    action = Ledger(storage, layout).record_action(
        "replay", by=who, reason=reason, quarantine_key=quarantine_key, landing_key=landing_key
    )
    log.info("replayed %s -> %s", quarantine_key, landing_key)
    return Replay(quarantine_key, landing_key, action)
