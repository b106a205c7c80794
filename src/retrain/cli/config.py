"""``retrain init`` and ``retrain config check``: a config for your own data, checked before
anything starts.

``config check`` exits with codes a CI job can use: 0 the config is valid (warnings are
printed), 1 it is not (or, with ``--strict``, it has warnings), 3 it is valid but a ``--sample``
file would be quarantined (or left in landing/) by ingest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrain.cli.common import CommandError
from retrain.config import ConfigError, default_config_path, load_config

INVALID = 1
SAMPLE_REJECTED = 3


def cmd_init(args: argparse.Namespace) -> int:
    from retrain.config_init import DraftError, draft_from_file

    sample, out = Path(args.from_sample), Path(args.out)
    if not sample.is_file():
        raise CommandError(f"{sample}: no such file", 1)
    if out.exists() and not args.force:
        raise CommandError(f"{out} exists: choose another --out, or --force to replace it", 1)
    try:
        draft = draft_from_file(sample, name=args.name or None)
    except DraftError as exc:
        raise CommandError(f"cannot draft a config from {sample}: {exc}", 1) from exc
    out.write_text(draft.toml)
    print(
        f"wrote {out}: dataset {draft.dataset!r} from {draft.rows:,} rows of {sample}; "
        f"id {draft.id_column}, time {draft.time_column}, target {draft.target}"
    )
    for note in draft.notes:
        print(f"  review: {note}")
    print(f"next: review {out}, then `retrain config check {out} --sample {sample}`")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from retrain.config_check import check_config

    path = Path(args.file) if args.file else default_config_path()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"{path}: NOT valid", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"  error: {line}", file=sys.stderr)
        return INVALID
    findings = check_config(cfg)
    for finding in findings:
        print(f"  warning: {finding}")
    ds = cfg.dataset
    print(
        f"{path}: valid ({len(findings)} warning(s)); dataset {ds.name!r}, {len(ds.columns)} "
        f"columns, id {ds.id_column}, time {ds.time_column}, target {ds.target}; bucket "
        f"s3://{cfg.storage.bucket}/{cfg.storage.landing_prefix}"
    )
    code = INVALID if findings and args.strict else 0
    for sample in args.sample:
        if not _sample_accepted(Path(sample), cfg):
            code = code or SAMPLE_REJECTED
    return code


def _sample_accepted(path: Path, cfg) -> bool:
    from retrain.steps.validate import check_local_file

    if not path.is_file():
        print(f"sample {path}: no such file", file=sys.stderr)
        return False
    verdict = check_local_file(path, cfg)
    rows = f", {verdict.rows:,} rows" if verdict.rows is not None else ""
    if verdict.fate == "accept":
        print(f"sample {path}: ACCEPTED{rows} ({verdict.reason})")
        return True
    fate = "QUARANTINED" if verdict.fate == "quarantine" else "LEFT IN landing/"
    print(f"sample {path}: would be {fate}{rows}")
    print(f"  because: {verdict.reason}")
    return False
