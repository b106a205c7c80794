"""What one ingest batch uploads to S3 to publish its reports, after 1, 10, 100 and 1,000 earlier
batches, beside the naive baseline of re-uploading the whole reports site.

- published: the real ``retrain.steps.ingest._publish`` for one batch of 5 files (4 passed, 1
  quarantined with a reason): the batch's summary page ``reports/validations/<batch>.html`` and
  its ``.json``, the batch's lines appended to the paged history (``retrain.history``), and the
  index (``publish_index``). Every PutObject it makes is counted, with its body's bytes, by a
  botocore ``before-parameter-build`` hook on the storage's client; its GETs, HEADs and LISTs
  are counted too (requests, not bytes).
- baseline: every object under ``reports/`` right after that batch published (its count and
  total size, from a listing): what re-uploading the whole site folder would cost at that point.

The history is built incrementally on a local moto S3 server (started here, on 127.0.0.1) by
calling the same ``_publish`` for every earlier batch, each after writing its files' validation
results the way the validate step does (``reports/validations/<batch>/<oid>.json`` and
``.html``: a trimmed synthetic GX result of 40 expectations, ~11 KB of JSON and its ~8.5 KB
page from ``retrain.reports.render_validation_result``; a real raw-gate result of a 200-row file
is ~36 KB and ~10 KB), so the baseline holds them. The measured batch
then stays in the history: the checkpoints are measured in one pass of ``--max + 1`` batches.

Each publication adds one immutable history page (``retrain.history``) showing up to
``PAGE_ROWS`` rows (its own and earlier publications' carried forward), so a batch's uploads
should not depend on what came before once a page is full (after PAGE_ROWS / FILES_PER_BATCH =
20 batches); every batch's uploads are counted, and each run also shows the mean and max over
the last WINDOW batches. The check: the bytes at the largest checkpoint must be within 10% of
the bytes at REFERENCE (100) batches; if not, the uploads of both are compared key by key
(batch ids and page numbers normalised) and the run exits with 1.

Prints a table and saves benchmarks/results/report_publishing.json. 1,000 batches take a few
minutes on 2 cores.

    .venv/bin/python benchmarks/report_publishing.py [--max 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.steps.ingest import FileOutcome
    from retrain.storage import S3Storage

from machine import describe  # benchmarks/ is on sys.path: the scripts run from there

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = (1, 10, 100, 1000)
FILES_PER_BATCH = 5  # the last one quarantined
EXPECTATIONS = 40
TOLERANCE = 0.10
REFERENCE = 100  # batches: the history page is full by then (it fills in 20)
WINDOW = 10  # batches in the mean/max columns
START = datetime(2026, 1, 1, tzinfo=UTC)
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
QUARANTINE_REASON = (
    "1 of 40 expectations of telco_churn.raw failed: monthly_charges has 3 rows outside "
    "[0, 500] (e.g. 612.5, 730.0, 501.25)"
)
COLUMNS = (
    "customer_id",
    "event_time",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "data_usage_gb",
    "contract",
    "payment_method",
    "region",
    "churned",
)


# -- counting ----------------------------------------------------------------------------------


def body_size(body: Any) -> int:
    """Bytes of a PutObject body: bytes, or a seekable stream (botocore wraps bytes in one)."""
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    here = body.tell()
    size = body.seek(0, os.SEEK_END) - here
    body.seek(here)
    return size


class RequestCounter:
    """Counts the S3 calls made on one client while ``active``: per operation, and each
    PutObject's key and body size."""

    def __init__(self) -> None:
        self.active = False
        self.calls: Counter[str] = Counter()
        self.puts: list[tuple[str, int]] = []

    def reset(self) -> None:
        self.calls.clear()
        self.puts.clear()

    def hook(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.active:
            return
        self.calls[model.name] += 1
        if model.name == "PutObject":
            self.puts.append((params["Key"], body_size(params.get("Body", b""))))

    @property
    def put_bytes(self) -> int:
        return sum(size for _, size in self.puts)


# -- synthetic batches -------------------------------------------------------------------------


def gx_result(file: str, oid: str, *, success: bool) -> dict[str, Any]:
    """A stored raw-gate result shaped like the validate step's (``file``, ``object_id``, then
    ``GateResult.to_dict()``), with a trimmed GX result of ``EXPECTATIONS`` expectations."""
    results = []
    for i in range(EXPECTATIONS):
        column = COLUMNS[i % len(COLUMNS)]
        failed = not success and i == 3
        kind = (
            "expect_column_to_exist",
            "expect_column_values_to_not_be_null",
            "expect_column_values_to_be_between",
            "expect_column_values_to_be_in_set",
        )[i % 4]
        results.append(
            {
                "success": not failed,
                "expectation_config": {"type": kind, "kwargs": {"column": column}},
                "result": (
                    {}
                    if kind == "expect_column_to_exist"
                    else {
                        "unexpected_count": 3 if failed else 0,
                        **({"partial_unexpected_list": [612.5, 730.0, 501.25]} if failed else {}),
                    }
                ),
            }
        )
    return {
        "file": file,
        "object_id": oid,
        "success": success,
        "suite": "telco_churn.raw",
        "evaluated": EXPECTATIONS,
        "summary": f"all {EXPECTATIONS} expectations passed" if success else QUARANTINE_REASON,
        "statistics": {
            "evaluated_expectations": EXPECTATIONS,
            "successful_expectations": EXPECTATIONS - (0 if success else 1),
            "unsuccessful_expectations": 0 if success else 1,
        },
        "result": {"success": success, "suite_name": "telco_churn.raw", "results": results},
    }


def write_results(
    storage: S3Storage, cfg: Config, pool: ThreadPoolExecutor, batch_id: str, n: int
) -> list[FileOutcome]:
    """What validate and route leave behind for one batch: each file's result (JSON and page)
    in the bucket, and the outcomes that ``_publish`` gets."""
    from retrain import reports
    from retrain.layout import Layout, object_id
    from retrain.steps.ingest import FileOutcome

    layout = Layout.of(cfg)
    landed = START + timedelta(hours=n)
    day = landed.date().isoformat()
    outcomes, writes = [], []
    for k in range(FILES_PER_BATCH):
        name = f"telco-export-{n:05d}-{k}.csv"
        source = layout.landing_key(name)
        oid = object_id(source, uuid.uuid4().hex, landed.isoformat())
        result_key = layout.validation_result_key(batch_id, oid)
        valid = k < FILES_PER_BATCH - 1
        payload = gx_result(source, oid, success=valid)
        page = reports.render_validation_result(payload, [source]).encode()
        writes.append(pool.submit(storage.put_json, result_key, payload))
        writes.append(
            pool.submit(
                storage.put_bytes,
                result_key.removesuffix(".json") + ".html",
                page,
                content_type=reports.HTML_CONTENT_TYPE,
            )
        )
        if valid:
            dest, report = layout.raw_key(name, day, batch_id), None
        else:
            dest = layout.quarantine_key(name, day, batch_id)
            report = layout.report_key(dest)
        outcomes.append(
            FileOutcome(
                source_key=source,
                dest_key=dest,
                valid=valid,
                reason="passed" if valid else QUARANTINE_REASON,
                report_key=report,
                rows=200,
                result_key=result_key,
            )
        )
    for w in writes:
        w.result()
    return outcomes


# -- comparing uploads -------------------------------------------------------------------------


def roles(puts: list[tuple[str, int]], batch_id: str) -> dict[str, int]:
    """Uploaded bytes per key, with the batch id and history page numbers normalised (the
    newest page written is ``page-<n>``, an older one ``page-<n-1>``), so two batches compare."""
    numbers = [int(m.group(1)) for key, _ in puts if (m := re.search(r"page-(\d+)\.", key))]
    newest = max(numbers, default=0)
    out: dict[str, int] = {}
    for key, size in puts:
        role = key.replace(batch_id, "<batch>")
        if m := re.search(r"page-(\d+)\.", role):
            back = newest - int(m.group(1))
            role = role.replace(m.group(0), f"page-<n{f'-{back}' if back else ''}>.")
        out[role] = out.get(role, 0) + size
    return out


def compare(low: dict[str, Any], high: dict[str, Any]) -> list[str]:
    """Key by key: what the batch at ``high`` uploaded against the batch at ``low``."""
    a, b = low["uploads"], high["uploads"]
    lines = [f"{'key (normalised)':<40} {low['history_batches']:>10} {high['history_batches']:>10}"]
    for role in sorted(set(a) | set(b)):
        x, y = a.get(role), b.get(role)
        delta = "" if x == y else f"  {'+' if (y or 0) >= (x or 0) else ''}{(y or 0) - (x or 0)}"
        shown = [str(v) if v is not None else "-" for v in (x, y)]
        lines.append(f"{role:<40} {shown[0]:>10} {shown[1]:>10}{delta}")
    return lines


# -- main --------------------------------------------------------------------------------------


def page_entries(storage: S3Storage, cfg: Config) -> int:
    from retrain.history import History
    from retrain.layout import Layout

    history = History(storage, Layout.of(cfg))
    return len(history.page(history.newest_page()))


def run(cfg: Config, storage: S3Storage, checkpoints: list[int]) -> list[dict[str, Any]]:
    from retrain.steps.ingest import _publish, batch_id_for

    counter = RequestCounter()
    # before-parameter-build: once per API call, with its parameters as the caller passed them
    # (at before-call the body is already a stream and the key is in the URL)
    storage.client.meta.events.register_first("before-parameter-build.s3", counter.hook)
    cycle = WINDOW
    per_batch: list[int] = []  # bytes each batch's publishing uploaded
    runs = []
    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for n in range(checkpoints[-1] + 1):  # n batches came before this one
            batch_id = batch_id_for(f"scheduled__bench-{n}")
            outcomes = write_results(storage, cfg, pool, batch_id, n)
            counter.reset()
            counter.active = True
            start = time.perf_counter()
            _publish(storage, cfg, batch_id, outcomes)
            seconds = time.perf_counter() - start
            counter.active = False
            per_batch.append(counter.put_bytes)
            if n and n % 100 == 0:
                print(f"  {n} batches published ({time.perf_counter() - began:.0f} s)", flush=True)
            if n not in checkpoints:
                continue
            site = storage.list_objects(cfg.storage.reports_prefix)
            window = per_batch[-cycle:]
            calls = counter.calls
            runs.append(
                {
                    "history_batches": n,
                    "objects": calls["PutObject"],
                    "bytes": counter.put_bytes,
                    "baseline_objects": len(site),
                    "baseline_bytes": sum(o.size for o in site),
                    "gets": calls["GetObject"],
                    "heads": calls["HeadObject"],
                    "lists": sum(v for k, v in calls.items() if k.startswith("List")),
                    "other_requests": sum(
                        v
                        for k, v in calls.items()
                        if k not in {"PutObject", "GetObject", "HeadObject"}
                        and not k.startswith("List")
                    ),
                    "publish_s": round(seconds, 3),
                    "history_page_entries": page_entries(storage, cfg),
                    # the last WINDOW batches (fewer at the start), this one included
                    "window_batches": len(window),
                    "window_mean_bytes": round(sum(window) / len(window)),
                    "window_max_bytes": max(window),
                    "uploads": roles(counter.puts, batch_id),
                }
            )
            r = runs[-1]
            print(
                f"  after {n}: {r['objects']} objects, {r['bytes']} bytes "
                f"(site: {r['baseline_objects']} objects, {r['baseline_bytes']} bytes)",
                flush=True,
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=1000, help="the largest checkpoint (batches)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks/results/report_publishing.json",
        help="JSON result path",
    )
    args = parser.parse_args()
    checkpoints = sorted({c for c in CHECKPOINTS if c < args.max} | {args.max})

    from retrain.config import load_config
    from retrain.local.s3server import start_s3_server
    from retrain.storage import S3Storage

    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="report-bench-") as tmp,
        start_s3_server(log_path=Path(tmp) / "moto.log") as server,
    ):
        env = {
            "RETRAIN__STORAGE__ENDPOINT_URL": server.endpoint_url,
            "RETRAIN__STORAGE__BUCKET": f"bench-{uuid.uuid4().hex[:12]}",
        }
        cfg = load_config(ROOT / "retrain.toml", env=env)
        storage = S3Storage.from_config(cfg.storage, **CREDENTIALS)
        storage.ensure_bucket()
        print(
            f"moto on {server.endpoint_url}; {FILES_PER_BATCH} files per batch; "
            f"checkpoints {checkpoints}",
            flush=True,
        )
        runs = run(cfg, storage, checkpoints)
    total = time.perf_counter() - began

    print(f"\ntotal {total:.0f} s\n")
    print(
        f"{'history':>7} {'objects':>7} {'bytes':>8} {'site objects':>12} {'site bytes':>11} "
        f"{'ratio':>7} {'GET':>4} {'HEAD':>4} {'LIST':>4} {'page entries':>12} "
        f"{'window mean/max bytes':>22}"
    )
    for r in runs:
        window = f"{r['window_mean_bytes']}/{r['window_max_bytes']}"
        print(
            f"{r['history_batches']:7d} {r['objects']:7d} {r['bytes']:8d} "
            f"{r['baseline_objects']:12d} {r['baseline_bytes']:11d} "
            f"{r['baseline_bytes'] / r['bytes']:6.0f}x {r['gets']:4d} {r['heads']:4d} "
            f"{r['lists']:4d} {r['history_page_entries']:12d} {window:>22}"
        )

    ref = next((r for r in runs if r["history_batches"] == REFERENCE), None)
    last = runs[-1]
    check: dict[str, Any] = {"tolerance": TOLERANCE}
    if ref is None or last is ref:
        print(f"\ncheck skipped: needs checkpoints {REFERENCE} and a larger one")
    else:
        growth = last["bytes"] / ref["bytes"] - 1
        ok = abs(growth) <= TOLERANCE
        check |= {
            "compared": [REFERENCE, last["history_batches"]],
            "growth": round(growth, 4),
            "ok": ok,
        }
        print(
            f"\ncheck: bytes after {last['history_batches']} batches ({last['bytes']}) vs after "
            f"{REFERENCE} ({ref['bytes']}): {growth:+.1%} -> {'OK' if ok else 'FAILED'} "
            f"(tolerance {TOLERANCE:.0%})"
        )
        if not ok:
            lines = compare(ref, last)
            check["uploads_compared"] = lines
            print("\n".join(lines))
    args.out.write_text(
        json.dumps(
            {"runs": runs, "check": check, "total_s": round(total, 1), "machine": describe()},
            indent=2,
        )
        + "\n"
    )
    print(f"saved {args.out}")
    if check.get("ok") is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
