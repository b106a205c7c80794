"""The demo's story: generated files dropped into landing/, followed through the runs they set
off, to the deploy decision. ``make demo`` tells it; the end-to-end test checks the same story.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retrain.config import Config
from retrain.layout import Layout
from retrain.local import devstack
from retrain.storage import S3Storage

STAGE_TIMEOUT = 900.0  # seconds per stage; generous, the machine is small


@dataclass(frozen=True)
class DemoFile:
    name: str
    scenario: str
    fmt: str
    rows: int
    days_ago: float


ROUNDS: tuple[tuple[DemoFile, ...], ...] = (
    (  # a normal week in two formats, plus one broken export
        DemoFile("customers-week1.csv", "normal", "csv", 4000, 14),
        DemoFile("customers-week1b.parquet", "normal", "parquet", 4000, 14),
        DemoFile("customers-broken-export.csv", "corrupt", "csv", 500, 14),
        # the most common mistake: the same export uploaded again under another name
        DemoFile("customers-week1-copy.csv", "copy", "csv", 0, 14),
    ),
    (  # the next week, after a price change: drifted
        DemoFile("customers-week2.csv", "drifted", "csv", 4000, 7),
    ),
)


def upload(storage: S3Storage, cfg: Config, files: tuple[DemoFile, ...], seed: int) -> list[str]:
    """Generate demo batches and drop them into landing/, as a user would."""
    from retrain.datagen import generate, write_batch

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    keys, first = [], b""
    for i, f in enumerate(files):
        if f.scenario == "copy":  # byte for byte the round's first file
            data = first
        else:
            df = generate(
                f.rows,
                seed=seed + i,
                scenario=f.scenario,
                start=now - timedelta(days=f.days_ago),
                days=7.0,
            )
            data = write_batch(df, f.fmt)
            first = first or data
        stem, ext = f.name.rsplit(".", 1)
        key = f"{cfg.storage.landing_prefix}{stem}-{seed}.{ext}"
        storage.put_bytes(key, data)
        keys.append(key)
    return keys


def run_round(
    stack: devstack.Stack,
    cfg: Config,
    storage: S3Storage,
    files: tuple[DemoFile, ...],
    seed: int,
    say=print,
) -> dict:
    """Upload one round of generated files and follow the runs they set off."""
    seen = seen_runs(stack)
    keys = upload(storage, cfg, files, seed)
    return follow_uploads(stack, cfg, storage, keys, seen, say=say)


def upload_files(storage: S3Storage, cfg: Config, paths: list[Path]) -> list[str]:
    """Drop local files into landing/ under their own names, as any S3 client would."""
    keys = []
    for path in paths:
        key = f"{cfg.storage.landing_prefix}{path.name}"
        storage.upload(key, path)
        keys.append(key)
    return keys


def seen_runs(stack: devstack.Stack) -> dict[str, set[str]]:
    """The runs there are before an upload: what follows it is a run not among them."""
    from retrain.local import follow

    return {d: follow.run_ids(stack.api, d, finished_only=d == "ingest") for d in devstack.DAG_IDS}


def follow_uploads(
    stack: devstack.Stack,
    cfg: Config,
    storage: S3Storage,
    keys: list[str],
    seen: dict[str, set[str]],
    say=print,
) -> dict:
    """Follow uploaded files through the runs they set off, to the deploy decision: where
    each file went (and why a quarantined one was), each run's tasks, the verdict, the scores."""
    from retrain.local import follow
    from retrain.registry import ModelRegistry

    api, clock = stack.api, follow.Clock()
    say(f"{clock()} uploaded {len(keys)} file(s) to {storage.uri(cfg.storage.landing_prefix)}")
    routed = follow.wait_routed(storage, cfg, keys, STAGE_TIMEOUT)
    for r in routed:
        verdict = "valid       ->" if r.valid else "QUARANTINED ->"
        why = "" if r.valid else f"\n{'':9}   because: {r.reason[:300]}"
        say(f"{clock()} ingest: {r.landing_key} {verdict} {r.dest_key}{why}")
    ingest_run = follow.wait_new_run(api, "ingest", seen["ingest"], STAGE_TIMEOUT)
    batches = sorted(
        {part for r in routed for part in r.dest_key.split("/") if part.startswith("batch=")}
    )
    say(f"{clock()} ingest run {ingest_run.run_id}: {ingest_run.state} ({', '.join(batches)})")
    summary = {
        "files": [r.__dict__ for r in routed],
        "ingest": ingest_run.state,
        "ingest_run": ingest_run.run_id,
    }
    if not any(r.valid for r in routed):
        say(f"{clock()} no valid file: no feature build, no retrain (as intended)")
        return summary

    def progress(line: str) -> None:
        say(f"{clock()} {line}")

    for dag_id in ("features", "retrain"):
        run = follow.wait_new_run(api, dag_id, seen[dag_id], STAGE_TIMEOUT, on_task=progress)
        say(f"{clock()} {dag_id} run {run.run_id}: {run.state}")
        summary[dag_id] = run.state
        if run.state != "success":
            say(api.failed_task_logs([dag_id], limit_runs=1))
            return summary
    registry = ModelRegistry(storage, cfg.storage.models_prefix)
    version = registry.list_versions()[-1]
    decision = registry.load_decision(version) or {}
    champion = registry.champion()
    summary |= {
        "version": version,
        "decision": decision,
        "champion": champion.version if champion else None,
    }
    deployed = champion is not None and champion.version == version
    evaluated = decision.get("version", version)
    shown = f"{evaluated} (serving: its refit {version})" if evaluated != version else version
    verdict = "DEPLOYED" if deployed else "HELD"
    say(f"{clock()} model {shown}: {verdict} -- {decision.get('reason', '?')}")
    if deployed:  # the deploy set off the scoring DAG: the new champion's predictions
        run = follow.wait_new_run(api, "score", seen["score"], STAGE_TIMEOUT, on_task=progress)
        summary["score"] = run.state
        manifest = _predictions(storage, cfg, version)
        summary["predictions"] = manifest
        rows = manifest.get("rows", 0) if manifest else 0
        where = storage.uri(Layout.of(cfg).predictions_prefix_of(version))
        say(f"{clock()} score run {run.run_id}: {run.state}, {rows} rows scored -> {where}")
    return summary


def _predictions(storage: S3Storage, cfg: Config, version: str) -> dict | None:
    from retrain.storage import ObjectNotFound

    try:
        return storage.get_json(Layout.of(cfg).predictions_manifest_key(version))
    except ObjectNotFound:
        return None


SYNC_STATE = ".etags.json"  # what a local copy holds, by key: the ETag it was downloaded at


def download_reports(storage: S3Storage, cfg: Config, dest: Path) -> Path:
    """Mirror the bucket's reports into ``dest`` (like ``aws s3 sync``): only objects that are
    new or changed since the last download are fetched, so a copy kept across runs costs what
    changed (a few pages per batch), not the whole history; pages gone from the bucket go."""
    prefix = cfg.storage.reports_prefix
    state_path = dest / SYNC_STATE
    held = json.loads(state_path.read_text()) if state_path.exists() else {}
    now = {o.key: o.etag for o in storage.list_objects(prefix)}
    for key, etag in now.items():
        target = dest / key[len(prefix) :]
        if held.get(key) == etag and target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get_bytes(key))
    for key in held.keys() - now.keys():
        (dest / key[len(prefix) :]).unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(now, indent=0, sort_keys=True))
    return dest / "index.html"
