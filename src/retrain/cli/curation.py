"""``retrain retract`` and ``replay``: an accepted file taken out, a quarantined one put back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrain.cli.common import airflow, stack_config, storage


def cmd_retract(args: argparse.Namespace) -> int:
    from retrain.airflow_api import AirflowApiError
    from retrain.curation import CurationError, retract

    cfg = stack_config(Path(args.root))
    try:
        done = retract(storage(cfg), cfg, args.target, reason=args.reason)
    except CurationError as exc:
        print(f"retract: {exc}", file=sys.stderr)
        return 2
    for raw, dest in zip(done.raw_keys, done.quarantine_keys, strict=True):
        print(f"retracted {raw} -> {dest}")
    print(f"recorded in {done.action_key}")
    if args.no_retrain:
        return 0
    api = airflow(args)
    try:
        if api is None:
            raise AirflowApiError("no --airflow-url and no local stack")
        api.emit_asset_event("features", {"retracted": list(done.raw_keys)})
        print("features asset re-emitted: the retrain DAG runs without the retracted files")
    except AirflowApiError as exc:
        print(
            f"could not re-emit the features asset ({exc}); the files are out of the training "
            "data either way: the next accepted batch retrains without them, or create a "
            "`features` asset event in the Airflow UI (Assets) to retrain now",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from retrain.curation import CurationError, replay

    cfg = stack_config(Path(args.root))
    try:
        done = replay(storage(cfg), cfg, args.key, reason=args.reason)
    except CurationError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print(f"replayed {done.quarantine_key} -> {done.landing_key} (recorded in {done.action_key})")
    return 0
