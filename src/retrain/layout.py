"""The bucket's key layout: every key the pipeline derives is built here, and nowhere else.

Stdlib only. Names that come from users (landing keys) reach this module only after
:func:`retrain.keys.classify_landing_key` turned them into safe relative names, so nothing built
here can leave its prefix.

::

    landing/<name>                                     the drop zone
    raw/ingest_date=<day>/batch=<batch>/<name>         accepted files, byte for byte
    quarantine/ingest_date=<day>/batch=<batch>/<name>  rejected (or retracted) files
        ... <name>.report.json                         why, with the failed expectations
    features/ingest_date=<day>/batch=<batch>/<name>.parquet
    predictions/<version>/ingest_date=<day>/batch=<batch>/<name>.parquet
                                                       a feature file scored by a model version
    predictions/<version>/manifest.json                written last: what that scoring wrote
    predictions/_scored.json                           the feature files every scoring so far saw
    ledger/objects/<object_id>.json                    one claim per landed object (exactly-once)
    ledger/content/<sha256>.json                       accepted content (duplicate uploads)
    ledger/ids/<sha256>.parquet                        ids of accepted content (duplicate ids)
    ledger/staging/ids/<sha256>.parquet                ids of validated, not yet accepted content
    ledger/attempts/<token>.json                       objects a task process is working on;
                                                       left behind when it died (retrain.attempts)
    ledger/actions/<when>-<kind>-<token>.json          retract / replay records (who, when, why)
    ledger/incidents/<incident>.json                   open incidents (retrain.alerts)
    ledger/last_accepted.json                          the newest accepted file (data freshness)
    ledger/retrain_streak.json                         retrain runs in a row without a deploy
    reports/validations/<batch>/<object_id>.json       a file's validation result (alone)
    reports/validations/<batch>/group-<token>.json     the result of files validated together
    reports/alerts/<when>-<incident>.json              every alert sent
    reports/history/page-<n>.json|.html                every landed file and training-set check
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from retrain.config import Config, StorageConfig

REPORT_SUFFIX = ".report.json"
BATCH_MARK = "batch="


def format_last_modified(value: datetime) -> str:
    """An object's LastModified as the trigger and every lister spell it (part of its identity).
    botocore parses it as an aware datetime; a naive one means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def page_key(result_key: str) -> str:
    """The page rendered beside a JSON result (``x.json`` -> ``x.html``)."""
    return result_key.removesuffix(".json") + ".html"


def history_page_name(number: int, ext: str) -> str:
    """``page-000042.html``: sorts by number; pages link to each other by this name."""
    return f"page-{number:06d}.{ext}"


def run_token(run_id: str) -> str:
    """A short, stable token per DAG run (an ingest run's batch id, a retrain run's training
    report): a retried task writes to the same place, and a run's pages can be found again."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:12]


def object_id(key: str, etag: str, last_modified: str) -> str:
    """The identity of one landed object: the same upload keeps it across listings and retries,
    a new upload under the same name (new time, maybe new bytes) gets a new one."""
    text = f"{key}\n{etag.strip(chr(34))}\n{last_modified}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _model_version(version: str) -> str:
    """A registry version id (``retrain.registry``'s rule), so it is one safe path segment."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", version):
        raise ValueError(f"not a model version: {version!r}")
    return version


@dataclass(frozen=True)
class Layout:
    s: StorageConfig

    @classmethod
    def of(cls, cfg: Config) -> Layout:
        return cls(cfg.storage)

    # -- data ---------------------------------------------------------------------------------

    @staticmethod
    def partition(day: str, batch_id: str) -> str:
        return f"ingest_date={day}/{BATCH_MARK}{batch_id}/"

    def raw_key(self, name: str, day: str, batch_id: str) -> str:
        return f"{self.s.raw_prefix}{self.partition(day, batch_id)}{name}"

    def quarantine_key(self, name: str, day: str, batch_id: str) -> str:
        return f"{self.s.quarantine_prefix}{self.partition(day, batch_id)}{name}"

    @staticmethod
    def report_key(quarantine_key: str) -> str:
        return quarantine_key + REPORT_SUFFIX

    def landing_key(self, name: str) -> str:
        return f"{self.s.landing_prefix}{name}"

    def retracted_key(self, raw_key: str) -> str:
        """Where a retracted raw file goes: the same partition and name under quarantine/."""
        return self.s.quarantine_prefix + self._relative(raw_key, self.s.raw_prefix)

    def feature_key(self, raw_key: str) -> str:
        """The full landed name plus ``.parquet``: ``a.csv`` and ``a.parquet`` in one batch are
        two files and must stay two feature files (stripping the extension merged them)."""
        return f"{self.s.features_prefix}{self._relative(raw_key, self.s.raw_prefix)}.parquet"

    @staticmethod
    def name_in_partition(key: str) -> str:
        """``raw/ingest_date=D/batch=B/sub/a.csv`` -> ``sub/a.csv`` (the name as it landed)."""
        _, mark, rest = key.partition("/" + BATCH_MARK)
        if not mark:
            return posixpath.basename(key)
        return rest.partition("/")[2]

    @staticmethod
    def ingest_day_of(key: str) -> str | None:
        """``.../ingest_date=2026-11-30/batch=B/a.csv`` -> ``"2026-11-30"`` (the arrival day)."""
        match = re.search(r"(?:^|/)ingest_date=(\d{4}-\d{2}-\d{2})/", key)
        return match.group(1) if match else None

    @staticmethod
    def batch_of(key: str) -> str | None:
        _, mark, rest = key.partition("/" + BATCH_MARK)
        return rest.partition("/")[0] if mark else None

    @staticmethod
    def _relative(key: str, prefix: str) -> str:
        if not key.startswith(prefix):
            raise ValueError(f"{key!r} is not under {prefix!r}")
        return key[len(prefix) :]

    # -- predictions --------------------------------------------------------------------------

    def predictions_prefix_of(self, version: str) -> str:
        return f"{self.s.predictions_prefix}{_model_version(version)}/"

    def predictions_key(self, version: str, feature_key: str) -> str:
        """The feature file's partition and name under the version: the same name landed in
        two batches stays two prediction files."""
        rel = self._relative(feature_key, self.s.features_prefix)
        return f"{self.predictions_prefix_of(version)}{rel}"

    def predictions_manifest_key(self, version: str) -> str:
        return f"{self.predictions_prefix_of(version)}manifest.json"

    @property
    def scoring_state_key(self) -> str:
        """Not a version's folder: version ids start with a letter or digit."""
        return f"{self.s.predictions_prefix}_scored.json"

    # -- ledger -------------------------------------------------------------------------------

    @property
    def claims_prefix(self) -> str:
        return f"{self.s.ledger_prefix}objects/"

    def claim_key(self, oid: str) -> str:
        return f"{self.claims_prefix}{oid}.json"

    def content_key(self, sha256: str) -> str:
        return f"{self.s.ledger_prefix}content/{sha256}.json"

    @property
    def ids_prefix(self) -> str:
        return f"{self.s.ledger_prefix}ids/"

    def ids_key(self, sha256: str) -> str:
        return f"{self.ids_prefix}{sha256}.parquet"

    def staged_ids_key(self, sha256: str) -> str:
        return f"{self.s.ledger_prefix}staging/ids/{sha256}.parquet"

    @property
    def attempts_prefix(self) -> str:
        return f"{self.s.ledger_prefix}attempts/"

    def attempt_key(self, token: str) -> str:
        """A marker of objects a task process is working on (``retrain.attempts``)."""
        return f"{self.attempts_prefix}{token}.json"

    @property
    def actions_prefix(self) -> str:
        return f"{self.s.ledger_prefix}actions/"

    def action_key(self, when: datetime, kind: str, token: str) -> str:
        return f"{self.actions_prefix}{when:%Y%m%dT%H%M%S%fZ}-{kind}-{token}.json"

    @property
    def incidents_prefix(self) -> str:
        return f"{self.s.ledger_prefix}incidents/"

    def incident_key(self, name: str) -> str:
        """``name`` is the project's own (``dag:retrain``, ``watchdog:data_age``)."""
        if not re.fullmatch(r"[a-z0-9_:.-]{1,100}", name):
            raise ValueError(f"not an incident name: {name!r}")
        return f"{self.incidents_prefix}{name.replace(':', '.')}.json"

    @property
    def approvals_prefix(self) -> str:
        return f"{self.s.ledger_prefix}approvals/"

    def approval_key(self, version: str) -> str:
        """The approval a person gives (or not) to deploy challenger ``version``."""
        return f"{self.approvals_prefix}{_model_version(version)}.json"

    @property
    def streak_key(self) -> str:
        return f"{self.s.ledger_prefix}retrain_streak.json"

    @property
    def last_accepted_key(self) -> str:
        return f"{self.s.ledger_prefix}last_accepted.json"

    # -- reports ------------------------------------------------------------------------------

    @property
    def history_head_key(self) -> str:
        return f"{self.s.reports_prefix}history/head.json"

    def history_page_key(self, number: int, ext: str) -> str:
        return f"{self.s.reports_prefix}history/{history_page_name(number, ext)}"

    @property
    def alerts_prefix(self) -> str:
        return f"{self.s.reports_prefix}alerts/"

    def alert_key(self, when: datetime, incident: str) -> str:
        token = incident.replace(":", ".")
        return f"{self.alerts_prefix}{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{token}.json"

    def validation_result_key(self, batch_id: str, oid: str) -> str:
        return f"{self.s.reports_prefix}validations/{batch_id}/{oid}.json"

    def validation_group_key(self, batch_id: str, oids: list[str]) -> str:
        """One result shared by files validated together, named after their object ids."""
        token = hashlib.sha256("\n".join(oids).encode()).hexdigest()[:16]
        return f"{self.s.reports_prefix}validations/{batch_id}/group-{token}.json"

    def training_report_key(self, token: str) -> str:
        return f"{self.s.reports_prefix}training/{token}.json"
