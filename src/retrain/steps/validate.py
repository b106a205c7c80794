"""Ingest's first step: read, hash and gate each landed object, and store each GX result.

It moves nothing, so running it twice is harmless (routing, in :mod:`retrain.steps.ingest`,
is the exactly-once part). Per file the fixed costs dominate for small files, so they are cut:
objects are read ahead with concurrent requests (bounded in bytes), files of one chunk are
validated many at a time in one GX run (:mod:`validation.grouped`, each file still getting its
own verdict), larger files alone and chunk by chunk, and results are written concurrently.

Memory follows the chunk, never the file: each object is streamed to a local temporary file
(hashed on the way) and parsed from there; a large file's ids go to a local Parquet file chunk
by chunk and are staged in the bucket from it (:mod:`validation.chunked`). The task needs local
disk for about its largest file twice over (the file and its ids), nothing under the checkout.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retrain import faults
from retrain.attempts import VALIDATE, Attempts, died_reason
from retrain.config import Config
from retrain.keys import classify_landing_key
from retrain.layout import Layout, object_id, page_key
from retrain.ledger import Ledger
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage
from retrain.tables import UnreadableFile, iter_table

if TYPE_CHECKING:
    import pandas as pd

    from validation.gates import GateResult

log = logging.getLogger(__name__)

Fate = Literal["accept", "quarantine", "skip"]
IO_THREADS = 8  # concurrent S3 requests (I/O-bound; boto3 clients are thread-safe)
# Bytes of landed objects downloaded ahead while earlier ones are validated; a larger object is
# downloaded alone when its turn comes.
READ_AHEAD_BYTES = 32 << 20
# Bytes a row takes at least in a landed file, for the uniqueness check's partition count (an
# over-estimate of the rows only makes more, smaller partitions); a compressed file holds more.
MIN_ROW_BYTES = 16
COMPRESSION = 8
MAX_RESULT_BYTES = 4 << 20  # a stored validation result (its page is smaller still)


@dataclass(frozen=True)
class LandedFile:
    """One object of the trigger's listing."""

    key: str
    etag: str
    size: int
    last_modified: str

    @classmethod
    def of(cls, item: dict[str, Any]) -> LandedFile:
        return cls(item["key"], item["etag"], int(item["size"]), item.get("last_modified", ""))

    @property
    def object_id(self) -> str:
        return object_id(self.key, self.etag, self.last_modified)


@dataclass(frozen=True)
class FileVerdict:
    """What validation found for one landed object (small: it travels through XCom)."""

    key: str
    etag: str
    size: int
    last_modified: str
    object_id: str
    fate: Fate
    reason: str
    name: str = ""  # safe name under the batch partition
    sha256: str | None = None
    rows: int | None = None
    result_key: str | None = None
    failed: tuple[dict[str, Any], ...] = ()  # failed expectations, for the quarantine report

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> FileVerdict:
        return cls(**{**data, "failed": tuple(data.get("failed") or ())})


@dataclass(frozen=True)
class _Fetched:
    """A landed object downloaded and hashed, not yet parsed (``verdict`` has name and
    sha256): ``path`` in a directory of its own, removed once the file is done with."""

    verdict: FileVerdict
    path: Path

    @property
    def rows_hint(self) -> int:
        """The file's rows: a Parquet file's footer says, else an upper estimate by size."""
        name = self.verdict.name.lower()
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            with contextlib.suppress(Exception):  # not Parquet: reading it will say why
                return pq.ParquetFile(self.path).metadata.num_rows
        compression = COMPRESSION if name.endswith((".gz", ".parquet")) else 1
        return self.verdict.size // MIN_ROW_BYTES * compression


@dataclass(frozen=True)
class _Small:
    """A file of one chunk, parsed, waiting for its group."""

    position: int
    verdict: FileVerdict
    frame: pd.DataFrame


def validate_files(
    storage: S3Storage, cfg: Config, files: Iterable[dict[str, Any]], *, batch_id: str
) -> list[FileVerdict]:
    """Read, hash and gate each file; store each GX result; move nothing.

    A file whose validation killed the task process ``[ingest] max_file_attempts`` times is
    quarantined unread; one that killed it fewer times is validated alone, under its own
    marker (:mod:`retrain.attempts`), before the others, which are validated together."""
    layout = Layout.of(cfg)
    landed = [LandedFile.of(f) for f in files]
    attempts = Attempts(storage, layout)
    deaths = attempts.deaths(f.object_id for f in landed) if landed else {}
    limit = cfg.ingest.max_file_attempts
    dead = [f for f in landed if deaths.get(f.object_id, 0) >= limit]
    suspects = [f for f in landed if 0 < deaths.get(f.object_id, 0) < limit]
    rest = [f for f in landed if not deaths.get(f.object_id, 0)]
    found = {f.object_id: _died(f, deaths[f.object_id], cfg) for f in dead}
    for f in suspects:
        log.warning(
            "%s: its task died %d time(s) on it: validated alone", f.key, deaths[f.object_id]
        )
        with attempts.working_on([f.object_id], VALIDATE):
            found |= {v.object_id: v for v in _validate(storage, cfg, [f], batch_id)}
    if rest:
        with attempts.working_on((f.object_id for f in rest), VALIDATE):
            found |= {v.object_id: v for v in _validate(storage, cfg, rest, batch_id)}
    done = [found[f.object_id] for f in landed if f.object_id in found]
    fates = {fate: sum(v.fate == fate for v in done) for fate in ("accept", "quarantine", "skip")}
    log.info(
        "validated %d file(s): %d passed, %d to quarantine, %d skipped; results under %s",
        len(done),
        fates["accept"],
        fates["quarantine"],
        fates["skip"],
        storage.uri(layout.validation_result_key(batch_id, "")).rsplit("/", 1)[0] + "/",
    )
    return done


@dataclass(frozen=True)
class SampleVerdict:
    """What ingest would do with a local file (``retrain config check --sample``)."""

    fate: Fate
    reason: str
    rows: int | None = None


def check_local_file(path: Path, cfg: Config) -> SampleVerdict:
    """A local file through ingest's checks as if it had landed under its name: the key rules,
    the byte checks and the raw GX checkpoint, chunk by chunk as :func:`validate_files` does
    (the ledger's checks, which need the bucket, apart: a repeated file, ids seen before)."""
    from validation.chunked import validate_raw_chunks
    from validation.gates import RAW_CHUNK_ROWS

    size = path.stat().st_size
    fate = classify_landing_key(
        cfg.storage.landing_prefix + path.name,
        cfg.storage.landing_prefix,
        cfg.ingest.ignore_patterns,
        size,
    )
    if fate.action != "process":
        return SampleVerdict("skip" if fate.action == "ignore" else "quarantine", fate.reason)
    verdict = FileVerdict(path.name, "", size, "", path.name, "skip", "", fate.name)
    with tempfile.TemporaryDirectory(prefix="retrain-sample-") as work:
        try:
            chunks = iter_table(
                path,
                fate.name,
                cfg.dataset,
                _chunk_rows(
                    verdict, cfg.resources.large_file_mb << 20, RAW_CHUNK_ROWS, RAW_CHUNK_ROWS
                ),
                max_cell_bytes=cfg.validation.max_cell_bytes,
            )
            validated = validate_raw_chunks(
                chunks,
                cfg,
                run_name=f"sample-{fate.name}",
                workdir=Path(work),
                rows_hint=_Fetched(verdict, path).rows_hint,
            )
            result, rows = validated.result, validated.rows
        except Exception as exc:  # UnreadableFile also from a later chunk
            result, rows = _failure(verdict, exc, cfg), None
    if result.success:
        return SampleVerdict("accept", result.summary(), rows)
    return SampleVerdict("quarantine", result.summary(), rows)


def _died(f: LandedFile, deaths: int, cfg: Config) -> FileVerdict:
    """The verdict on a file that keeps killing its task: quarantined, not read again."""
    fate = classify_landing_key(
        f.key, cfg.storage.landing_prefix, cfg.ingest.ignore_patterns, f.size
    )
    reason = died_reason(VALIDATE, deaths)
    log.error("%s: %s", f.key, reason)
    return FileVerdict(
        f.key, f.etag, f.size, f.last_modified, f.object_id, "quarantine", reason, fate.name
    )


def _validate(
    storage: S3Storage, cfg: Config, landed: list[LandedFile], batch_id: str
) -> list[FileVerdict]:
    from validation.chunked import validate_raw_chunks
    from validation.gates import LARGE_CHUNK_ROWS, RAW_CHUNK_ROWS
    from validation.grouped import GROUP_ROWS

    layout = Layout.of(cfg)
    ledger = Ledger(storage, layout)
    verdicts: list[FileVerdict | None] = [None] * len(landed)
    small: list[_Small] = []
    large = cfg.resources.large_file_mb << 20  # validate_large's files: a heavy task's memory
    with (
        tempfile.TemporaryDirectory(prefix="retrain-validate-") as local,
        ThreadPoolExecutor(IO_THREADS) as pool,
    ):
        writes: list[Future] = []
        store = _Store(storage, ledger, layout, pool, writes, batch_id)
        fetch = lambda n, f: _fetch(storage, cfg, ledger, f, Path(local) / str(n))  # noqa: E731
        for i, got in _read_ahead(pool, landed, fetch):
            if isinstance(got, FileVerdict):
                verdicts[i] = got
                continue
            verdict, run_name = got.verdict, f"{batch_id}-{got.verdict.object_id}"
            faults.kill_on_marker(got.path, verdict.key)  # tests only: off unless set
            try:  # chunk by chunk: memory is bounded by the chunk size, not by the file's rows
                chunks = iter_table(
                    got.path,
                    verdict.name,
                    cfg.dataset,
                    _chunk_rows(verdict, large, RAW_CHUNK_ROWS, LARGE_CHUNK_ROWS),
                    max_cell_bytes=cfg.validation.max_cell_bytes,
                )
                head = [next(chunks)]
                if (second := next(chunks, None)) is None:
                    shutil.rmtree(got.path.parent)
                    small.append(_Small(i, verdict, head.pop()))
                    if sum(len(s.frame) for s in small) >= GROUP_ROWS:
                        _validate_small(cfg, small, verdicts, store)
                    continue
                head.append(second)
                del second
                validated = validate_raw_chunks(
                    _resume(head, chunks),
                    cfg,
                    run_name=run_name,
                    workdir=got.path.parent,
                    rows_hint=got.rows_hint,
                )
                result, rows, ids = validated.result, validated.rows, validated.ids
            except Exception as exc:  # UnreadableFile also from a later chunk
                result, rows, ids = _failure(verdict, exc, cfg), None, None
            got.path.unlink(missing_ok=True)  # its ids (if any) stay until they are staged
            verdicts[i] = done = store.one(verdict, result, rows, ids)
            if done.fate != "accept" or not isinstance(ids, Path):  # no ids to stage
                shutil.rmtree(got.path.parent, ignore_errors=True)
        _validate_small(cfg, small, verdicts, store)
        for write in writes:
            write.result()  # raise the first failed write: the task is retried
    return [v for v in verdicts if v is not None]


def _fetch(
    storage: S3Storage, cfg: Config, ledger: Ledger, f: LandedFile, local: Path
) -> FileVerdict | _Fetched:
    """A verdict the key or the ledger decides, or the object downloaded into the new
    directory ``local`` (runs in a thread)."""
    base = FileVerdict(f.key, f.etag, f.size, f.last_modified, f.object_id, "skip", "")
    if ledger.get_claim(f.object_id) is not None:
        return replace(base, reason="claimed by an earlier run: finishing what it decided")
    fate = classify_landing_key(
        f.key, cfg.storage.landing_prefix, cfg.ingest.ignore_patterns, f.size
    )
    if fate.action == "ignore":
        return replace(base, reason=fate.reason)
    if fate.action == "quarantine":
        return replace(base, fate="quarantine", reason=fate.reason, name=fate.name)
    local.mkdir()
    path = local / "landed"
    try:  # exactly the version listed (If-Match), or nothing
        got = storage.download(f.key, path, if_match=f.etag)
    except ObjectNotFound:
        shutil.rmtree(local)
        return replace(base, reason="gone from landing/ before it was read (deleted by its owner?)")
    except PreconditionFailed:
        shutil.rmtree(local)
        return replace(base, reason="replaced by a new upload since it was listed: next batch")
    return _Fetched(replace(base, name=fate.name, sha256=got.sha256), path)


def _read_ahead(
    pool: ThreadPoolExecutor,
    landed: list[LandedFile],
    fetch: Callable[[int, LandedFile], FileVerdict | _Fetched],
) -> Iterator[tuple[int, FileVerdict | _Fetched]]:
    """``(position, fetch(position, file))`` in order, with later files fetched meanwhile while
    their sizes add up to at most READ_AHEAD_BYTES (always at least the next one)."""
    pending: deque[tuple[int, Future]] = deque()
    ahead = 0
    following = 0
    for _ in landed:
        while following < len(landed) and (
            not pending or ahead + landed[following].size <= READ_AHEAD_BYTES
        ):
            pending.append((following, pool.submit(fetch, following, landed[following])))
            ahead += landed[following].size
            following += 1
        position, future = pending.popleft()
        ahead -= landed[position].size
        yield position, future.result()


def _chunk_rows(verdict: FileVerdict, large: int, light_rows: int, large_rows: int) -> int:
    """Rows a chunk: ``large_rows`` in validate_large (a heavy task's memory), else
    ``light_rows``, halved for Parquet: its reader holds a row group's pages (~70 MB for 1M rows
    of 20 columns) beside the chunk."""
    if verdict.size >= large:
        return large_rows
    return light_rows // 2 if verdict.name.lower().endswith(".parquet") else light_rows


def _resume(head: list[pd.DataFrame], rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks already taken, then the rest, holding none after it is handed on."""
    while head:
        yield head.pop(0)
    yield from rest


def _validate_small(
    cfg: Config, small: list[_Small], verdicts: list[FileVerdict | None], store: _Store
) -> None:
    """Validate the waiting one-chunk files together, store their results, empty the list."""
    from validation.grouped import validate_raw_group

    if not small:
        return
    frames = [s.frame for s in small]
    try:
        run_name = f"{store.batch_id}-group"
        validations: list[Any] = validate_raw_group(frames, cfg, run_name=run_name)
    except Exception:  # whatever crashed the group must not take every file with it
        log.exception("validating %d files together crashed: now one by one", len(small))
        validations = [None] * len(small)
    del frames
    for s, validated in zip(small, validations, strict=True):
        if validated is None:
            validated = _alone(cfg, s, store.batch_id)
        if validated.group:
            members = [small[j].verdict for j in validated.group]
            verdicts[s.position] = store.shared(s.verdict, members, validated)
        else:
            verdicts[s.position] = store.one(
                s.verdict, validated.result, validated.rows, validated.ids
            )
    small.clear()


def _alone(cfg: Config, s: _Small, batch_id: str) -> Any:
    from validation.gates import RawValidation, text_ids, validate_raw_file

    try:
        result = validate_raw_file(s.frame, cfg, run_name=f"{batch_id}-{s.verdict.object_id}")
    except Exception as exc:
        result = _failure(s.verdict, exc, cfg)
    return RawValidation(
        result=result, rows=len(s.frame), ids=text_ids(s.frame, cfg.dataset.id_column)
    )


def _failure(verdict: FileVerdict, exc: Exception, cfg: Config) -> GateResult:
    """The failed result of a file that could not be read, or that crashed the gate (which
    would otherwise fail every retry and every later batch behind it)."""
    from validation.gates import unreadable_file_result

    if isinstance(exc, UnreadableFile):
        return unreadable_file_result(verdict.name, exc, cfg)
    log.error("validating %s crashed", verdict.key, exc_info=exc)
    return unreadable_file_result(verdict.name, f"validation crashed: {exc!r}", cfg)


@dataclass
class _Store:
    """Writes results and staged ids in the background and turns results into verdicts."""

    storage: S3Storage
    ledger: Ledger
    layout: Layout
    pool: ThreadPoolExecutor
    writes: list[Future]
    batch_id: str
    groups: dict[tuple[str, ...], str] = field(default_factory=dict)  # member oids -> key

    def one(
        self, v: FileVerdict, result: GateResult, rows: int | None, ids: pd.Series | Path | None
    ) -> FileVerdict:
        """A file validated alone: its own result."""
        key = self.layout.validation_result_key(self.batch_id, v.object_id)
        self._write(key, {"file": v.key, "object_id": v.object_id, **result.to_dict()}, [v.key])
        return self._verdict(v, result, rows, ids, key)

    def shared(self, v: FileVerdict, members: list[FileVerdict], validated: Any) -> FileVerdict:
        """A file validated together with ``members``: their result, written once."""
        oids = tuple(m.object_id for m in members)
        if oids not in self.groups:
            self.groups[oids] = self.layout.validation_group_key(self.batch_id, list(oids))
            files = [{"file": m.key, "object_id": m.object_id} for m in members]
            self._write(
                self.groups[oids],
                {"files": files, **validated.result.to_dict()},
                [m.key for m in members],
            )
        return self._verdict(v, validated.result, validated.rows, validated.ids, self.groups[oids])

    def _verdict(
        self,
        v: FileVerdict,
        result: GateResult,
        rows: int | None,
        ids: pd.Series | Path | None,
        result_key: str,
    ) -> FileVerdict:
        if not result.success:
            failed = tuple(
                {"expectation_type": x.expectation_type, "column": x.column, "details": x.details}
                for x in result.failed
            )
            return replace(
                v,
                fate="quarantine",
                reason=result.summary(),
                rows=rows,
                result_key=result_key,
                failed=failed,
            )
        assert v.sha256 is not None and ids is not None
        self.writes.append(self.pool.submit(self._stage_ids, v.sha256, ids))
        return replace(v, fate="accept", reason="passed", rows=rows, result_key=result_key)

    def _stage_ids(self, sha256: str, ids: pd.Series | Path) -> None:
        """Stage the ids; a local ids file goes with its directory once it is uploaded."""
        try:
            self.ledger.stage_ids(sha256, ids)
        finally:
            if isinstance(ids, Path):
                shutil.rmtree(ids.parent, ignore_errors=True)

    def _write(self, key: str, payload: dict[str, Any], files: list[str]) -> None:
        """The result as JSON and, beside it, as a page (what the reports link to). A result
        is bounded already (validation.bounds); one still over MAX_RESULT_BYTES keeps its
        verdict and failures, not GX's full result."""
        import json

        from retrain import reports

        size = len(json.dumps(payload, default=str))
        if size > MAX_RESULT_BYTES:
            note = f"GX's full result left out: {size:,} bytes, over {MAX_RESULT_BYTES:,}"
            payload = {**payload, "result": {"omitted": note}}
        page = reports.render_validation_result(payload, files).encode()
        self.writes.append(self.pool.submit(self.storage.put_json, key, payload))
        self.writes.append(
            self.pool.submit(
                self.storage.put_bytes,
                page_key(key),
                page,
                content_type=reports.HTML_CONTENT_TYPE,
            )
        )
