"""``retrain models``, ``rollback`` and ``predict``: the registry, a rollback, local scoring."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from retrain.cli.common import stack_config, storage
from retrain.config import Config

MODELS_LISTED = 20
REASON_WIDTH = 60


def _registry(cfg: Config):
    from retrain.registry import ModelRegistry

    return ModelRegistry(storage(cfg), cfg.storage.models_prefix)


def model_rows(
    registry, metric: str, limit: int | None, versions: list[str] | None = None
) -> list[dict]:
    """One row per decision, newest first: the evaluated version, created, holdout metric, the
    gate's verdict and (a deploy) the serving refit it promoted, in its own column; a refit is
    not a row of its own. ``champion``: the row's version or its refit is the champion. One GET
    for the decision and one for the metadata of each version read."""
    champion = registry.champion()
    current = champion.version if champion else None
    versions = (registry.list_versions() if versions is None else versions)[::-1]
    rows = []
    for version in versions:
        if limit and len(rows) >= limit:
            break
        decision = registry.load_decision(version) or {}
        if decision.get("version", version) != version:  # a refit's copy of its decision
            continue
        meta = registry.load_metadata(version)
        if meta.get("refit_of"):  # a refit without its decision (written right after it)
            continue
        verdict = decision.get("deploy")
        serving = decision.get("serving_version") or ""
        rows.append(
            {
                "version": version,
                "created": meta.get("created_at") or "",
                metric: (meta.get("metrics") or {}).get(metric),
                "decision": "deploy" if verdict is True else "hold" if verdict is False else "",
                "serving": serving,
                "reason": decision.get("reason") or "",
                "champion": current is not None and current in (version, serving),
            }
        )
    return rows


def render_models(
    rows: list[dict], promotions: list, metric: str, total: int, where: str
) -> list[str]:
    """``total``: the versions in the registry (refits included); the rows are one per
    decision (:func:`model_rows`)."""
    from retrain.alerts import first_line

    lines = [
        f"models in {where} (one row per decision, newest first: {len(rows)} shown; "
        f"{total} versions, refits included; * = champion)"
    ]
    if not rows:
        lines.append("  none yet: the first retrain saves one")
    else:
        width = max(len("VERSION"), *(len(r["version"]) for r in rows))
        serve = max(len("SERVING"), *(len(r.get("serving") or "-") for r in rows))
        header = (
            f"  {'VERSION':<{width}}  {'CREATED':<16}  {metric.upper():>6}  DECISION  "
            f"{'SERVING':<{serve}}  REASON"
        )
        lines.append(header)
        for r in rows:
            value = r[metric]
            shown_value = f"{value:.3f}" if isinstance(value, int | float) else "-"
            decision = r["decision"] or "-"
            serving = r.get("serving") or "-"
            reason = first_line(r["reason"], REASON_WIDTH) if r["reason"] else "(undecided)"
            lines.append(
                f"{'*' if r['champion'] else ' '} {r['version']:<{width}}  "
                f"{_short_time(r['created']):<16}  {shown_value:>6}  {decision:<8}  "
                f"{serving:<{serve}}  {reason}"
            )
    lines.append("promotions (newest first):")
    if not promotions:
        lines.append("  none: no model was deployed yet")
    for p in promotions:
        came = f" <- {p.previous_version}" if p.previous_version else " (first champion)"
        who = f" by {p.by}" if p.by else ""
        why = first_line(p.reason, REASON_WIDTH) if p.reason else ""
        lines.append(f"  {_short_time(p.at, seconds=True)}  {p.kind:<8}  {p.version}{came}{who}")
        if why:
            lines.append(f"      {why}")
    return lines


def _short_time(value: str, *, seconds: bool = False) -> str:
    """``2026-11-22T01:30:12.123+00:00`` -> ``2026-11-22 01:30`` (UTC), as given if unparseable."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or "-"
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}" if seconds else f"{when:%Y-%m-%d %H:%M}"


def cmd_models(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.storage import StorageError

    cfg = stack_config(Path(args.root))
    registry = _registry(cfg)
    metric = cfg.gate.metric
    try:
        versions = registry.list_versions()
        rows = model_rows(registry, metric, args.limit, versions)
        promotions = registry.promotions(limit=args.limit or None)
    except (StorageError, BotoCoreError) as exc:
        print(f"models: cannot read {cfg.storage.bucket!r}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps({"models": rows, "promotions": [p.as_dict() for p in promotions]}, indent=2)
        )
        return 0
    where = registry.storage.uri(registry.prefix)
    print("\n".join(render_models(rows, promotions, metric, len(versions), where)))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.curation import current_user
    from retrain.registry import ChampionChanged, RollbackRefused, UnknownVersion
    from retrain.storage import StorageError

    cfg = stack_config(Path(args.root))
    registry = _registry(cfg)
    try:
        seen = registry.champion()
        champion = registry.rollback(
            args.version, reason=args.reason, expected=seen, by=current_user()
        )
    except (UnknownVersion, RollbackRefused) as exc:
        print(f"rollback: {exc}; nothing was changed", file=sys.stderr)
        return 1
    except ChampionChanged as exc:
        print(
            f"rollback: the champion moved while rolling back ({exc}); nothing was changed: "
            "see `retrain models` and decide again",
            file=sys.stderr,
        )
        return 1
    except (StorageError, BotoCoreError) as exc:
        print(f"rollback: cannot reach {cfg.storage.bucket!r}: {exc}", file=sys.stderr)
        return 2
    record = registry.promotion_key(champion.promoted_at, champion.kind, champion.version)
    metric = champion.metrics.get(cfg.gate.metric)
    on_holdout = f" ({cfg.gate.metric} {metric:.3f} on its holdout)" if metric is not None else ""
    print(f"rolled back: champion {champion.previous_version} -> {champion.version}{on_holdout}")
    print(f"reason: {champion.reason} (by {champion.by})")
    print(f"recorded in {registry.storage.uri(record)}")
    try:
        from retrain.steps.reporting import publish_index

        publish_index(registry.storage, cfg)
    except (StorageError, BotoCoreError) as exc:
        print(f"(the reports index was not updated: {exc})", file=sys.stderr)
    print(
        f"`retrain predict` scores with {champion.version} from now on; the batch scores under "
        f"{registry.storage.uri(cfg.storage.predictions_prefix)} stay as they were written"
    )
    return 0


def default_predictions_path(path: Path) -> Path:
    """``data/new.csv.gz`` -> ``data/new.predictions.csv``, next to the input."""
    name = path.name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.predictions.csv")


def cmd_predict(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError

    from retrain.steps.scoring import (
        ScoringInputError,
        ScoringRefused,
        champion_model,
        read_file_for_scoring,
        score_frame,
    )
    from retrain.storage import StorageError

    path = Path(args.file)
    if not path.is_file():
        print(f"predict: {path}: no such file", file=sys.stderr)
        return 1
    cfg = stack_config(Path(args.root))
    try:
        features = read_file_for_scoring(path, cfg.dataset)
        champion, model = champion_model(_registry(cfg))
    except (ScoringInputError, ScoringRefused) as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return 1
    except (StorageError, BotoCoreError) as exc:
        print(
            f"predict: cannot read the champion from {cfg.storage.bucket!r}: {exc}", file=sys.stderr
        )
        return 2
    scores = score_frame(model, features, cfg.dataset, champion.version)
    out = Path(args.out) if args.out else default_predictions_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        scores.to_parquet(out, index=False)
    else:
        scores.to_csv(out, index=False)
    metric = champion.metrics.get(cfg.gate.metric)
    on_holdout = f", {cfg.gate.metric} {metric:.3f} on its holdout" if metric is not None else ""
    print(
        f"scored {len(scores)} row(s) of {path} with the champion {champion.version} "
        f"(deployed {champion.deployed_at}{on_holdout})"
    )
    if len(scores):
        s = scores["score"]
        print(
            f"scores: mean {s.mean():.3f}, min {s.min():.3f}, max {s.max():.3f}; "
            f"{int((s >= 0.5).sum())} row(s) at 0.5 or above"
        )
    print(f"wrote {out} ({', '.join(scores.columns)})")
    return 0
