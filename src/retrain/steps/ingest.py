"""Ingest: validate every landed object, then route each one exactly once.

Two steps, so that the slow part runs in parallel and the part that must be exactly-once does
not:

- :func:`retrain.steps.validate.validate_files` (one call per chunk of a batch, in parallel
  Airflow tasks) reads each object, hashes it, runs the raw GX checkpoint and stores the result
  in the bucket. It moves nothing, so running it twice is harmless.
- :func:`route_batch` (one call per batch) decides each object's fate with everything the batch
  and the history know (same bytes already accepted? ids already ingested?), *claims* the object
  in the ledger before it moves, then moves it. A retry, or the next run after a crash, finds the
  claim and finishes it, so an object lands in exactly one of raw/ and quarantine/.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from retrain import metrics as statsd
from retrain import reports
from retrain.alerts import Alert, Incidents, first_line
from retrain.attempts import ROUTE, Attempts, died_reason
from retrain.config import Config
from retrain.history import Entry, History
from retrain.keys import classify_landing_key
from retrain.layout import Layout, page_key, run_token
from retrain.ledger import BatchOverlap, Claim, Ledger
from retrain.steps.reporting import publish_index
from retrain.steps.validate import IO_THREADS, FileVerdict, validate_files
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

log = logging.getLogger(__name__)


STAGED_IDS_GRACE = timedelta(hours=24)  # longer than any ingest run, validation to routing


def batch_id_for(run_id: str) -> str:
    """A short, stable batch id per DAG run: a retried task writes to the same place, and the
    run's "Reports" tab finds the batch's page (``layout.run_token``)."""
    return run_token(run_id)


def landed_files(storage: S3Storage, cfg: Config) -> list[dict[str, Any]]:
    """landing/ as the trigger lists it (ignored names left out): for the CLI, tests, benchmarks."""
    from retrain.layout import format_last_modified

    prefix, patterns = cfg.storage.landing_prefix, cfg.ingest.ignore_patterns
    return [
        {
            "key": o.key,
            "etag": o.etag.strip('"'),
            "size": o.size,
            "last_modified": format_last_modified(o.last_modified),
        }
        for o in storage.iter_objects(prefix)
        if classify_landing_key(o.key, prefix, patterns, o.size).action != "ignore"
    ]


# -- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    source_key: str
    dest_key: str
    valid: bool
    reason: str
    report_key: str | None = None
    rows: int | None = None
    result_key: str | None = None  # the GX validation result (none for unsafe or empty keys)


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    outcomes: tuple[FileOutcome, ...]
    skipped: tuple[dict[str, str], ...]
    summary_key: str | None
    # the quarantine notice, recorded before the index was published (so the index lists it);
    # not part of as_dict: the alert itself is in the bucket's history
    notice: Alert | None = field(default=None, compare=False)

    @property
    def raw_keys(self) -> tuple[str, ...]:
        return tuple(o.dest_key for o in self.outcomes if o.valid)

    @property
    def quarantined(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.valid)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "raw_keys": list(self.raw_keys),
            "quarantined": [asdict(o) for o in self.quarantined],
            "outcomes": [asdict(o) for o in self.outcomes],
            "skipped": list(self.skipped),
            "summary_key": self.summary_key,
        }


def route_batch(
    storage: S3Storage,
    cfg: Config,
    verdicts: Iterable[FileVerdict | dict[str, Any]],
    *,
    batch_id: str,
    now: datetime | None = None,
) -> IngestResult:
    """Decide, claim and move each validated object. Safe to run again, and against a racing
    router: whoever claims an object first fixes its fate, the other finishes that claim.

    S3 requests run concurrently; the id check runs once for the whole batch, in bounded
    memory (:mod:`retrain.id_overlap`), and the decisions one file after another in key order,
    so two copies (or overlapping ids) within one batch are decided exactly.
    """
    layout = Layout.of(cfg)
    ledger = Ledger(storage, layout)
    day = (now or datetime.now(UTC)).date().isoformat()
    items = sorted(
        (v if isinstance(v, FileVerdict) else FileVerdict.of(v) for v in verdicts),
        key=lambda v: v.key,
    )
    skipped: list[dict[str, str]] = []
    with (
        ThreadPoolExecutor(IO_THREADS) as pool,
        tempfile.TemporaryDirectory(prefix="route-ids-") as tmp,
    ):
        claims = _map(pool, lambda v: ledger.get_claim(v.object_id), items)
        # claims of earlier tries first: their accepted ids must count for the files below
        earlier = [i for i, c in enumerate(claims) if c is not None]
        finished = dict(
            zip(
                earlier,
                _map(pool, lambda i: _finish(storage, ledger, claims[i]), earlier),
                strict=True,
            )
        )
        fresh = [i for i, c in enumerate(claims) if c is None and items[i].fate != "skip"]
        for v, c in zip(items, claims, strict=True):
            if c is None and v.fate == "skip":
                skipped.append({"key": v.key, "reason": v.reason})
                log.info("skipped %s: %s", v.key, v.reason)
        known = _Known.gather(
            [items[i] for i in fresh], cfg, ledger, Attempts(storage, layout), pool, Path(tmp)
        )
        decided: list[tuple[int, Claim]] = []
        for i in fresh:
            claim = _decide(items[i], cfg, ledger, layout, known, batch_id, day)
            decided.append((i, claim))
            if claim.accepted and claim.sha256:
                known.accept(claim)
        done = _map(
            pool,
            lambda ic: _claim_and_finish(storage, ledger, items[ic[0]], ic[1]),
            decided,
        )
        finished |= dict(zip((i for i, _ in decided), done, strict=True))
    Attempts(storage, layout).sweep(
        (items[i].object_id for i in finished if finished[i] is not None),
        lambda oid: ledger.get_claim(oid) is not None,
    )
    # staged ids a route killed mid-way left behind (one ingest run at a time: none is in use)
    if swept := ledger.sweep_staged_ids(STAGED_IDS_GRACE):
        log.info("swept %d staged id file(s) left by an earlier, killed route", len(swept))
    outcomes = []
    for i in sorted(finished):
        if finished[i] is None:
            skipped.append(
                {"key": items[i].key, "reason": "claimed, but in neither landing/ nor dest"}
            )
        else:
            outcomes.append(finished[i])
    summary_key, notice = None, None
    if outcomes:  # the notice first, then the index: the index shows the alert it describes
        summary_key = _publish(storage, cfg, batch_id, outcomes, index=False)
        notice = _quarantine_notice(
            Incidents(storage, layout), storage, batch_id, outcomes, summary_key
        )
        publish_index(storage, cfg)
    accepted_now = [o for o in outcomes if o.valid]
    with statsd.Metrics.from_config(cfg.metrics) as m:
        statsd.record_batch(
            m,
            accepted=len(accepted_now),
            quarantined=len(outcomes) - len(accepted_now),
            rows=sum(o.rows or 0 for o in accepted_now),
        )
    if accepted_now:  # data freshness, for the watchdog
        storage.put_json(
            layout.last_accepted_key,
            {
                "raw_key": accepted_now[-1].dest_key,
                "landed_as": accepted_now[-1].source_key,
                "batch_id": batch_id,
                "files": len(accepted_now),
                "accepted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return IngestResult(batch_id, tuple(outcomes), tuple(skipped), summary_key, notice)


def _map(pool: ThreadPoolExecutor, fn: Any, items: list[Any]) -> list[Any]:
    return list(pool.map(fn, items))


@dataclass
class _Known:
    """What the decisions go by: content accepted (by hash; this batch's decisions added as
    they are made), the batch's ids already ingested, and each object's route deaths."""

    accepted: dict[str, dict[str, Any] | None]
    ids: BatchOverlap
    deaths: dict[str, int]
    taken: list[str] = field(default_factory=list)  # hashes accepted in this batch, in order

    @classmethod
    def gather(
        cls,
        fresh: list[FileVerdict],
        cfg: Config,
        ledger: Ledger,
        attempts: Attempts,
        pool: ThreadPoolExecutor,
        workdir: Path,
    ) -> _Known:
        """One id check for the whole batch: it does not depend on the decisions. A file whose
        route deaths reached ``[ingest] max_file_attempts`` is left out (quarantined unread); a
        heavy file is read under a marker naming only its own object(s)."""
        passed = [v for v in fresh if v.fate == "accept" and v.sha256]
        hashes = sorted({v.sha256 for v in passed if v.sha256})
        accepted = dict(zip(hashes, _map(pool, ledger.accepted_content, hashes), strict=True))
        deaths = attempts.deaths((v.object_id for v in passed), ROUTE) if passed else {}
        limit = cfg.ingest.max_file_attempts
        owners: dict[str, list[str]] = {}
        for v in passed:
            if v.sha256 and not accepted.get(v.sha256) and deaths.get(v.object_id, 0) < limit:
                owners.setdefault(v.sha256, []).append(v.object_id)
        ids = ledger.batch_overlap(
            sorted(owners),
            workdir,
            pool,
            reading=lambda sha: attempts.working_on(owners[sha], ROUTE),
        )
        return cls(accepted, ids, deaths)

    def accept(self, claim: Claim) -> None:
        assert claim.sha256 is not None
        self.accepted[claim.sha256] = _content_record(claim)
        self.taken.append(claim.sha256)


def _claim_and_finish(
    storage: S3Storage, ledger: Ledger, v: FileVerdict, decided: Claim
) -> FileOutcome | None:
    if decided.report_key:  # the report exists before the claim: a claim always has its reason
        storage.put_json(decided.report_key, _report(decided, v.failed))
    return _finish(storage, ledger, ledger.claim(decided))


def _content_record(claim: Claim) -> dict[str, Any]:
    return {"raw_key": claim.dest_key, "landed_as": claim.key, "batch_id": claim.batch_id}


def _decide(
    v: FileVerdict,
    cfg: Config,
    ledger: Ledger,
    layout: Layout,
    known: _Known,
    batch_id: str,
    day: str,
) -> Claim:
    """The fate of an unclaimed object, from its verdict and what was accepted before it
    (``known``: content records by hash and ids, including this batch's decisions so far)."""
    reason, duplicate_of, overlapping = v.reason, None, 0
    accept = v.fate == "accept"
    deaths = known.deaths.get(v.object_id, 0)
    if accept and deaths >= cfg.ingest.max_file_attempts:
        accept, reason = False, _died_routing(v, deaths)
    elif accept and v.sha256 and (earlier := known.accepted.get(v.sha256)):
        accept, duplicate_of = False, earlier["raw_key"]
        reason = (
            f"duplicate: the same bytes were already accepted as {earlier['raw_key']} "
            f"(landed as {earlier['landed_as']}, batch {earlier['batch_id']})"
        )
    elif accept and v.sha256:
        overlap = known.ids.overlap(v.sha256, known.taken)
        overlapping = overlap.count
        if overlap.count and cfg.ingest.duplicate_ids == "reject":
            earlier_files = [
                (known.accepted.get(sha) or ledger.accepted_content(sha) or {}).get("raw_key", sha)
                for sha in overlap.earlier[:3]
            ]
            accept = False
            reason = (
                f"{overlap.count} {cfg.dataset.id_column} value(s) were already ingested "
                f"(e.g. {list(overlap.examples)}) in {earlier_files}; [ingest] "
                'duplicate_ids = "reject" (set "upsert" to let the newest row win)'
            )
        elif overlap.count:
            reason = f"passed; {overlap.count} id(s) replace earlier rows (upsert)"
    if accept:
        dest, report = layout.raw_key(v.name, day, batch_id), None
    else:
        dest = layout.quarantine_key(v.name, day, batch_id)
        report = layout.report_key(dest)
    return Claim(
        object_id=v.object_id,
        key=v.key,
        etag=v.etag,
        last_modified=v.last_modified,
        size=v.size,
        sha256=v.sha256,
        batch_id=batch_id,
        verdict="raw" if accept else "quarantine",
        dest_key=dest,
        reason=reason,
        decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=v.rows,
        report_key=report,
        result_key=v.result_key,
        duplicate_of=duplicate_of,
        overlapping_ids=overlapping,
    )


def _died_routing(v: FileVerdict, deaths: int) -> str:
    reason = died_reason(ROUTE, deaths)
    log.error("%s: %s", v.key, reason)
    return reason


def _finish(storage: S3Storage, ledger: Ledger, claim: Claim) -> FileOutcome | None:
    """Do what the claim says; every step is idempotent, so finishing twice is harmless."""
    if claim.accepted:
        ledger.record_content(claim)
    try:
        storage.move(claim.key, claim.dest_key, if_etag=claim.etag)
    except PreconditionFailed:
        # The owner overwrote the object between listing and moving: the new upload is a new
        # object (its own claim, next batch); the claimed version no longer exists to move.
        log.warning(
            "%s was replaced by a new upload before it moved: left for the next batch", claim.key
        )
    except ObjectNotFound:
        log.error("%s: claimed for %s but in neither place", claim.key, claim.dest_key)
        return None
    # Accepted ids are in ledger/ids/ now (record_content). A content duplicate's staged ids
    # are its original's (one key per hash): the original's finish, maybe running beside this
    # one, promotes and drops them (an earlier batch's original: the sweep does).
    if claim.sha256 and (claim.accepted or claim.duplicate_of is None):
        ledger.drop_staged_ids(claim.sha256)
    if claim.accepted:
        log.info("valid: %s -> %s (%s rows)", claim.key, claim.dest_key, claim.rows)
    else:
        log.warning(
            "QUARANTINED %s -> %s: %s (report: %s)",
            claim.key,
            storage.uri(claim.dest_key),
            claim.reason,
            storage.uri(claim.report_key or ""),
        )
    return FileOutcome(
        claim.key,
        claim.dest_key,
        claim.accepted,
        claim.reason,
        claim.report_key,
        claim.rows,
        claim.result_key,
    )


def _report(claim: Claim, failed: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return {
        "file": claim.key,
        "quarantined_as": claim.dest_key,
        "batch_id": claim.batch_id,
        "reason": claim.reason,
        "failed_expectations": list(failed),
        "validation_result": claim.result_key,
        "duplicate_of": claim.duplicate_of,
        "object": {"etag": claim.etag, "size": claim.size, "last_modified": claim.last_modified},
        "sha256": claim.sha256,
        "decided_at": claim.decided_at,
    }


def _publish(
    storage: S3Storage,
    cfg: Config,
    batch_id: str,
    outcomes: list[FileOutcome],
    *,
    index: bool = True,
) -> str:
    """The batch's page, its lines in the history, the index (``index``; False: the caller
    publishes it, after its alert): the same cost on day 1000."""
    rp = cfg.storage.reports_prefix
    at = datetime.now(UTC).isoformat(timespec="seconds")
    pages = {o.source_key: _result_page(o.result_key, rp) for o in outcomes}
    entries = [
        {
            "file": o.source_key,
            "status": "passed" if o.valid else "quarantined",
            "reason": o.reason,
            "destination": o.dest_key,
            "report": o.report_key,
            "result": pages[o.source_key],
        }
        for o in outcomes
    ]
    key = reports.publish_validation_summary(storage, rp, batch_id, entries)
    History(storage, Layout.of(cfg)).append(
        [
            Entry(
                at=at,
                kind="file",
                name=o.source_key,
                status="passed" if o.valid else "quarantined",
                reason=first_line(o.reason),
                link=pages[o.source_key],
                batch=batch_id,
            )
            for o in outcomes
        ]
    )
    if index:
        publish_index(storage, cfg)
    return key


def _result_page(result_key: str | None, reports_prefix: str) -> str | None:
    """The rendered page of a file's GX result, relative to the reports root."""
    if not result_key or not result_key.startswith(reports_prefix):
        return None
    return page_key(result_key[len(reports_prefix) :])


def alert_quarantined(
    incidents: Incidents, storage: S3Storage, result: IngestResult
) -> Alert | None:
    """One notice per batch that quarantined files: which, why, where the reports are.
    :func:`route_batch` records it before it publishes the index; this returns that one
    (recording it here only for a result that has none)."""
    if result.notice is not None:
        return result.notice
    return _quarantine_notice(
        incidents, storage, result.batch_id, result.outcomes, result.summary_key
    )


def _quarantine_notice(
    incidents: Incidents,
    storage: S3Storage,
    batch_id: str,
    outcomes: Iterable[FileOutcome],
    summary_key: str | None,
) -> Alert | None:
    bad = [o for o in outcomes if not o.valid]
    if not bad:
        return None
    shown = "; ".join(
        f"{o.source_key.rsplit('/', 1)[-1]}: {first_line(o.reason, 120)}" for o in bad[:3]
    )
    more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
    links = []
    for o in bad[:3]:  # its GX result page (opens in a browser), then its quarantine report
        if o.result_key:
            links.append(storage.uri(page_key(o.result_key)))
        if o.report_key:
            links.append(storage.uri(o.report_key))
    if summary_key:
        links.insert(0, storage.uri(summary_key))
    return incidents.notice(
        "ingest:quarantined",
        f"{len(bad)} file(s) quarantined in batch {batch_id}",
        shown + more,
        links=tuple(links),
    )


def ingest_batch(
    storage: S3Storage, cfg: Config, files: list[dict[str, Any]], *, batch_id: str
) -> IngestResult:
    """Validate and route a batch in one call (what the DAG does in several tasks)."""
    return route_batch(
        storage, cfg, validate_files(storage, cfg, files, batch_id=batch_id), batch_id=batch_id
    )
