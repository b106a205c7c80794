"""Exactly-once under faults, on the real stack: the triggerer SIGKILLed while files arrive, the
ingest ``route`` task SIGKILLed in the middle of its moves, the S3 server frozen during a batch.

After each fault one check (:func:`assert_exactly_once`) waits for the stack to finish by itself
and then proves the promise of the design: landing/ is empty, every uploaded file is in exactly one
of raw/ and quarantine/, no id is featurized twice, and no more retrain runs started than ingest
runs emitted the raw asset. Nothing is triggered or repaired by hand.

They run on the embedded and on the celery profile (``celery`` marker, see conftest.py).

The fault tests generate their data 60 days back, older than any other e2e test's, so whichever
test trains after them is scored on its own, newer holdout.
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrain.airflow_api import AirflowApi, DagRun, TaskInstance
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.faults import ENV as FAULT_ENV
from retrain.layout import REPORT_SUFFIX, Layout
from retrain.local import devstack
from retrain.storage import S3Storage

pytestmark = pytest.mark.e2e

BOUND = 300.0  # seconds for any one wait: generous, the machine has 2 cores
IDLE_POLLS = 2  # the pipeline must look idle this many polls in a row
DATA_START = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=60)
PENDING_SENSOR_STATES = (None, "scheduled", "queued", "deferred", "up_for_reschedule")


@dataclass(frozen=True)
class Before:
    """The runs that had finished when a test started: anything else happened during it."""

    finished: dict[str, frozenset[str]]

    def new_runs(self, api: AirflowApi, dag_id: str) -> list[DagRun]:
        return [r for r in api.dag_runs(dag_id) if r.run_id not in self.finished[dag_id]]


def prepare(cfg: Config, tag: str, seeds: Iterable[int], rows: int) -> list[tuple[str, bytes]]:
    """Normal generated files, one seed each (ids are unique per seed), serialized up front so
    that uploads are only PUTs."""
    out = []
    for seed in seeds:
        df = generate(rows, seed=seed, scenario="normal", start=DATA_START, days=7.0)
        out.append((f"{cfg.storage.landing_prefix}{tag}-{seed}.csv", write_batch(df, "csv")))
    return out


def pipeline_idle(api: AirflowApi) -> bool:
    """No run at work and no asset event waiting for one; the ingest run waiting in the
    triggerer for the next batch is idle."""
    for dag_id in devstack.DAG_IDS:
        for run in api.dag_runs(dag_id):
            if run.finished:
                continue
            if dag_id == "ingest":
                tis = {t.task_id: t.state for t in api.task_instances(dag_id, run.run_id)}
                if tis.get("wait_for_files") in PENDING_SENSOR_STATES:
                    continue
            return False
    return not any(
        api.get_json(f"/api/v2/dags/{dag_id}/assets/queuedEvents")["queued_events"]
        for dag_id in ("features", "retrain", "score")
    )


def wait_idle(api: AirflowApi) -> None:
    streak = [0]

    def settled() -> bool:
        streak[0] = streak[0] + 1 if pipeline_idle(api) else 0
        return streak[0] >= IDLE_POLLS

    devstack.wait_for(settled, BOUND, interval=2.0, what="the pipeline to finish its runs")


def snapshot(api: AirflowApi) -> Before:
    """Wait for whatever earlier tests set off, then remember what is done."""
    wait_idle(api)
    return Before(
        {d: frozenset(r.run_id for r in api.dag_runs(d) if r.finished) for d in devstack.DAG_IDS}
    )


def landing_left(storage: S3Storage, cfg: Config, keys: list[str]) -> list[str]:
    present = {o.key for o in storage.list_objects(cfg.storage.landing_prefix)}
    return [k for k in keys if k in present]


def assert_exactly_once(
    stack: devstack.Stack, cfg: Config, storage: S3Storage, keys: list[str], before: Before
) -> dict[str, str]:
    """Wait (bounded) until the stack has routed, featurized and retrained by itself, then
    check exactly-once end to end. Returns where each uploaded key went."""
    s, api = cfg.storage, stack.api
    devstack.wait_for(
        lambda: not storage.list_objects(s.landing_prefix),
        BOUND,
        what="landing/ to be empty",
    )
    wait_idle(api)

    # every uploaded file in exactly one of raw/ and quarantine/ (reports are not data)
    placed: dict[str, list[str]] = {k: [] for k in keys}
    by_name = {k[len(s.landing_prefix) :]: k for k in keys}
    data = [
        o.key
        for prefix in (s.raw_prefix, s.quarantine_prefix)
        for o in storage.list_objects(prefix)
        if not o.key.endswith(REPORT_SUFFIX)
    ]
    for key in data:
        if (landed := by_name.get(Layout.name_in_partition(key))) is not None:
            placed[landed].append(key)
    wrong = {k: v for k, v in placed.items() if len(v) != 1}
    assert not wrong, f"files lost (no copy) or duplicated (several copies): {wrong}"

    # every raw file featurized, no id featurized twice: nothing trained twice
    layout = Layout.of(cfg)
    raw = [k for k in data if k.startswith(s.raw_prefix)]
    features = {o.key for o in storage.list_objects(s.features_prefix)}
    missing = [k for k in raw if layout.feature_key(k) not in features]
    assert not missing, f"raw files without features after the features DAG ran: {missing}"
    id_col = cfg.dataset.id_column
    files_of: dict[str, list[str]] = {}
    for key in sorted(features):
        for i in pd.read_parquet(io.BytesIO(storage.get_bytes(key)), columns=[id_col])[id_col]:
            files_of.setdefault(str(i), []).append(key)
    twice = {i: ks for i, ks in files_of.items() if len(ks) > 1}
    assert not twice, (
        f"{len(twice)} id(s) featurized more than once, e.g. {list(twice.items())[:5]}"
    )

    # no more retrains than ingest runs that emitted the raw asset; every run of the test ended
    # well (a killed try is retried, not failed)
    emitted = 0
    for run in before.new_runs(api, "ingest"):
        tis = {t.task_id: t.state for t in api.task_instances("ingest", run.run_id)}
        emitted += int(tis.get("publish_raw") == "success")
    retrains = before.new_runs(api, "retrain")
    assert len(retrains) <= emitted, (
        f"{len(retrains)} retrain run(s) for {emitted} raw asset event(s): "
        f"{[r.run_id for r in retrains]}"
    )
    if raw_placed := [v[0] for v in placed.values() if v[0].startswith(s.raw_prefix)]:
        assert emitted >= 1 and retrains, f"{len(raw_placed)} file(s) in raw/ but nothing retrained"
    bad = [
        (d, r.run_id, r.state)
        for d in devstack.DAG_IDS
        for r in before.new_runs(api, d)
        if r.finished and r.state != "success"
    ]
    assert not bad, f"runs that did not succeed: {bad}"
    return {k: v[0] for k, v in placed.items()}


def assert_all_raw(cfg: Config, placed: dict[str, str]) -> None:
    """The fault tests upload valid data with fresh ids: a quarantine means the fault made a file
    look bad (e.g. a retry taking the file's own ids for duplicates)."""
    quarantined = {k: v for k, v in placed.items() if not v.startswith(cfg.storage.raw_prefix)}
    assert not quarantined, f"valid files quarantined: {quarantined}"


def current(stack: devstack.Stack) -> devstack.Stack:
    """The stack as recorded now (a restarted component has a new pid)."""
    loaded = devstack.load(Path(stack.root))
    assert loaded is not None, "stack.json is gone"
    return loaded


def running_ti(api: AirflowApi, before: Before, task_ids: tuple[str, ...]) -> TaskInstance | None:
    """The first task instance of ``task_ids`` that is running in an ingest run of this test."""
    for run in before.new_runs(api, "ingest"):
        for ti in api.task_instances("ingest", run.run_id):
            if ti.task_id in task_ids and ti.state == "running":
                return ti
    return None


def wait_route_running(stack: devstack.Stack, before: Before) -> TaskInstance:
    """The route task instance of this test's batch, once it runs (bounded wait)."""
    return devstack.wait_for(
        lambda: running_ti(stack.api, before, ("route",)),
        BOUND,
        interval=0.5,
        what="the route task to run",
    )


def waiting_sensor(api: AirflowApi, before: Before) -> str | None:
    """The state of ``wait_for_files`` in the ingest run that will take the next batch."""
    for run in before.new_runs(api, "ingest"):
        for ti in api.task_instances("ingest", run.run_id):
            if ti.task_id == "wait_for_files":
                return ti.state
    return None


def task_process(ti_id: str) -> int | None:
    """The pid of the task process of the try ``ti_id``: the task runner titles itself
    ``airflow worker -- <ti id>`` (its supervisor: ``... LocalExecutor: <ti id>``)."""
    title = f"airflow worker -- {ti_id}"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text == title:
            return int(cmdline.parent.name)
    return None


@pytest.mark.celery
def test_killing_the_triggerer_while_files_arrive_loses_and_duplicates_nothing(
    stack, cfg, storage, explain
):
    files = prepare(cfg, "trg", range(1101, 1107), rows=100)
    with explain():
        before = snapshot(stack.api)
        devstack.wait_for(
            lambda: waiting_sensor(stack.api, before) == "deferred",
            BOUND,
            interval=0.5,
            what="the ingest run to wait in the triggerer",
        )
        keys: list[str] = []
        down = False
        try:
            for i, (key, body) in enumerate(files):
                if i == 2:  # the trigger has seen the first files, not settled them: kill it
                    os.killpg(current(stack).pids["triggerer"], signal.SIGKILL)
                    down = True
                if i == 4:  # two more arrived with no triggerer at all
                    devstack.restart(current(stack), "triggerer")
                    down = False
                storage.put_bytes(key, body)
                keys.append(key)
                time.sleep(0.5)  # quicker than the settle window: one batch if nothing fails
        finally:
            if down:  # the tests after this one need a triggerer
                devstack.restart(current(stack), "triggerer")
        placed = assert_exactly_once(stack, cfg, storage, keys, before)
    assert_all_raw(cfg, placed)


@pytest.mark.celery
def test_killing_the_route_task_mid_batch_finishes_every_claim_once(stack, cfg, storage, explain):
    files = prepare(cfg, "route", range(2001, 2049), rows=25)
    with explain():
        before = snapshot(stack.api)
        for key, body in files:
            storage.put_bytes(key, body)
        keys = [k for k, _ in files]
        ti = wait_route_running(stack, before)
        devstack.wait_for(
            lambda: len(landing_left(storage, cfg, keys)) < len(keys),
            BOUND,
            interval=0.1,
            what="the first file to leave landing/",
        )
        pid = task_process(ti.id)
        too_late = (
            "routing had finished before the kill: the fault was not injected mid-routing "
            "(upload more files so that route takes longer)"
        )
        assert pid is not None, too_late
        assert os.getpgid(pid) == pid, "the task process leads its own process group"
        os.killpg(pid, signal.SIGKILL)
        left = landing_left(storage, cfg, keys)
        assert left, too_late
        placed = assert_exactly_once(stack, cfg, storage, keys, before)
        (route,) = [
            t for t in stack.api.task_instances("ingest", ti.run_id) if t.task_id == "route"
        ]
    assert route.try_number > ti.try_number, f"the killed try was not retried: {route}"
    assert_all_raw(cfg, placed)
    print(f"killed route try {ti.try_number} with {len(left)}/{len(keys)} files still in landing/")


@pytest.mark.celery
def test_a_file_that_kills_its_validate_task_is_quarantined_while_its_batch_goes_on(
    stack, cfg, storage, explain
):
    """The task process dies without a Python error (as under the OOM killer): the file is
    counted, validated alone on the retry, and quarantined once it killed its task twice; its
    batch-mates reach raw/ in the same run."""
    mates = prepare(cfg, "mate", range(4001, 4004), rows=300)  # enough to train on alone
    marker = stack.overrides[FAULT_ENV]  # armed on the shared stack (conftest.FAST)
    df = generate(100, seed=4009, scenario="normal", start=DATA_START, days=7.0)
    df["region"] = df["region"].astype(object)
    df.loc[0, "region"] = marker
    evil = (f"{cfg.storage.landing_prefix}evil-4009.csv", write_batch(df, "csv"))
    files = [*mates, evil]
    with explain():
        before = snapshot(stack.api)
        for key, body in files:
            storage.put_bytes(key, body)
        keys = [k for k, _ in files]
        placed = assert_exactly_once(stack, cfg, storage, keys, before)
        tries = {
            (run.run_id, t.task_id): t.try_number
            for run in before.new_runs(stack.api, "ingest")
            if run.finished
            for t in stack.api.task_instances("ingest", run.run_id)
            if t.task_id.startswith("validate")
        }
    assert placed[evil[0]].startswith(cfg.storage.quarantine_prefix), placed
    report = storage.get_json(placed[evil[0]] + REPORT_SUFFIX)
    assert "could not be processed: the task died 2 times" in report["reason"], report
    assert_all_raw(cfg, {k: v for k, v in placed.items() if k != evil[0]})
    assert max(tries.values()) == 3, f"two tries died, the third quarantined it: {tries}"
    assert not storage.list_objects(f"{cfg.storage.ledger_prefix}attempts/"), "markers swept"


@pytest.mark.celery
def test_freezing_the_s3_server_during_a_batch_delays_but_loses_nothing(
    stack, cfg, storage, explain
):
    files = prepare(cfg, "s3", range(3001, 3004), rows=100)
    s3_group = current(stack).pids["s3"]  # a session leader: stop its whole group
    with explain():
        before = snapshot(stack.api)
        for key, body in files:
            storage.put_bytes(key, body)
        keys = [k for k, _ in files]
        devstack.wait_for(
            lambda: running_ti(stack.api, before, ("validate_0", "validate_1", "route")),
            BOUND,
            interval=0.5,
            what="validate or route to run",
        )
        os.killpg(s3_group, signal.SIGSTOP)
        try:
            time.sleep(30.0)  # the fault itself: S3 answers nothing for 30 s
        finally:
            os.killpg(s3_group, signal.SIGCONT)
        placed = assert_exactly_once(stack, cfg, storage, keys, before)
    assert_all_raw(cfg, placed)


# A task orphaned by a dead scheduler is reset to run again by the next scheduler once the dead
# one's heartbeat is older than [scheduler] scheduler_health_check_threshold (30 s), at its next
# look for orphans (every 15 s on the local stacks; Airflow's default, 300 s, would not fit).
ORPHAN_BOUND = 200.0


def run_finished(api: AirflowApi, dag_id: str, run_id: str) -> bool:
    return any(r.run_id == run_id and r.finished for r in api.dag_runs(dag_id))


def test_killing_the_scheduler_mid_batch_moves_on_in_bounded_time(stack, cfg, storage, explain):
    """With LocalExecutor the task's supervisor is the scheduler's child: SIGKILL the
    scheduler's process group while ``route`` runs, and the orphaned try stays "running" until
    a scheduler resets it. The pipeline must finish the batch within ORPHAN_BOUND."""
    if stack.profile != "embedded":
        pytest.skip("the scheduler's children run tasks only with LocalExecutor")
    files = prepare(cfg, "sched", range(5001, 5049), rows=25)  # ids unique to this test
    with explain():
        before = snapshot(stack.api)
        for key, body in files:
            storage.put_bytes(key, body)
        keys = [k for k, _ in files]
        ti = wait_route_running(stack, before)
        killed_at = time.monotonic()
        os.killpg(current(stack).pids["scheduler"], signal.SIGKILL)
        devstack.restart(current(stack), "scheduler")
        devstack.wait_for(
            lambda: run_finished(stack.api, "ingest", ti.run_id),
            ORPHAN_BOUND - (time.monotonic() - killed_at),
            interval=1.0,
            what=f"the batch's ingest run to finish within {ORPHAN_BOUND:.0f} s of the kill",
        )
        recovered = time.monotonic() - killed_at
        placed = assert_exactly_once(stack, cfg, storage, keys, before)
        (route,) = [
            t for t in stack.api.task_instances("ingest", ti.run_id) if t.task_id == "route"
        ]
    assert route.try_number > ti.try_number, f"the orphaned try was not retried: {route}"
    assert_all_raw(cfg, placed)
    print(f"scheduler killed mid-route: batch routed {recovered:.0f} s later")
