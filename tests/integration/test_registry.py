from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from retrain.registry import (
    Champion,
    ChampionChanged,
    ModelRegistry,
    RollbackRefused,
    UnknownVersion,
    VersionExists,
)
from retrain.storage import S3Storage

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(storage: S3Storage) -> ModelRegistry:
    return ModelRegistry(storage, "models/")


def save(registry: ModelRegistry, version: str | None = None, auc: float = 0.8) -> str:
    version = version or registry.new_version()
    registry.save_version(
        version,
        model_text=f"tree\nversion={version}\n",
        metadata={"metrics": {"auc": auc}, "rows": 1000},
        reference_profile={"tenure_months": {"bins": [0, 1, 2]}},
    )
    return version


def test_new_version_is_sortable_and_unique() -> None:
    t0 = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    a, b = ModelRegistry.new_version(t0), ModelRegistry.new_version(t0)
    later = ModelRegistry.new_version(t0 + timedelta(seconds=1))
    assert re.fullmatch(r"20261122T013000Z-[0-9a-f]{6}", a)
    assert a != b
    assert max(a, b) < later
    naive = ModelRegistry.new_version(datetime(2026, 11, 22, 1, 30))
    assert naive.startswith("20261122T013000Z-")


def test_save_and_load_version(registry: ModelRegistry, storage: S3Storage) -> None:
    version = save(registry, "20261122T013000Z-aaaaaa", auc=0.81)
    assert registry.load_model_text(version) == f"tree\nversion={version}\n"
    assert registry.load_metadata(version) == {"metrics": {"auc": 0.81}, "rows": 1000}
    assert registry.load_reference(version) == {"tenure_months": {"bins": [0, 1, 2]}}
    assert storage.exists(f"models/{version}/model.txt")
    assert registry.version_exists(version)
    with pytest.raises(UnknownVersion):
        registry.load_metadata("20990101T000000Z-ffffff")


def test_holdout_scores_are_kept_with_a_version(registry: ModelRegistry) -> None:
    scores = np.array([0.25, 0.5, 0.125])
    version = registry.new_version()
    registry.save_version(
        version,
        model_text="tree\n",
        metadata={},
        reference_profile={},
        holdout_scores=scores,
    )
    np.testing.assert_array_equal(registry.load_holdout_scores(version), scores)
    assert registry.load_holdout_scores(save(registry)) is None  # saved without any


def test_list_versions_only_complete_ones(registry: ModelRegistry, storage: S3Storage) -> None:
    v2 = save(registry, "20261122T020000Z-bbbbbb")
    v1 = save(registry, "20261122T010000Z-aaaaaa")
    storage.put_bytes("models/20261122T030000Z-cccccc/model.txt", b"partial")  # no metadata
    registry.promote(v1, expected=None, reason="first", metrics={})
    assert registry.list_versions() == [v1, v2]


def test_versions_are_write_once(registry: ModelRegistry) -> None:
    version = save(registry)
    save(registry, version)  # identical content: an idempotent retry
    with pytest.raises(VersionExists):
        registry.save_version(
            version,
            model_text="a different model",
            metadata={},
            reference_profile={},
        )
    assert registry.load_model_text(version) == f"tree\nversion={version}\n"


def test_invalid_version_is_rejected(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError):
        save(registry, "../champion")


def test_promote_requires_existing_version(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownVersion):
        registry.promote("20261122T013000Z-000000", expected=None, reason="x", metrics={})
    assert registry.champion() is None


def test_promote_compare_and_swap(registry: ModelRegistry) -> None:
    v1, v2, v3 = save(registry), save(registry), save(registry)
    assert registry.champion() is None

    first = registry.promote(v1, expected=None, reason="bootstrap", metrics={"auc": 0.8})
    current = registry.champion()
    assert current == first
    assert (current.version, current.metrics, current.reason) == (v1, {"auc": 0.8}, "bootstrap")
    assert current.previous_version is None

    with pytest.raises(ChampionChanged) as info:  # stale: believes there is no champion
        registry.promote(v2, expected=None, reason="stale", metrics={})
    assert info.value.current == first
    assert registry.champion() == first

    second = registry.promote(v2, expected=first, reason="better", metrics={"auc": 0.85})
    assert registry.champion() == second
    assert second.previous_version == v1 and second.etag != first.etag

    with pytest.raises(ChampionChanged):  # stale: still holds the first champion
        registry.promote(v3, expected=first, reason="stale", metrics={})
    assert registry.champion() == second


def test_promote_when_pointer_was_deleted(registry: ModelRegistry, storage: S3Storage) -> None:
    v1, v2 = save(registry), save(registry)
    first = registry.promote(v1, expected=None, reason="x", metrics={})
    storage.delete(registry.champion_key)
    with pytest.raises(ChampionChanged):
        registry.promote(v2, expected=first, reason="x", metrics={})
    assert registry.champion() is None


@pytest.mark.parametrize("with_incumbent", [False, True])
def test_concurrent_promoters_exactly_one_wins(
    registry: ModelRegistry, with_incumbent: bool
) -> None:
    if with_incumbent:
        registry.promote(save(registry), expected=None, reason="incumbent", metrics={})
    expected = registry.champion()
    candidates = [save(registry) for _ in range(6)]
    barrier = threading.Barrier(len(candidates))
    winners: list[Champion] = []
    losers: list[ChampionChanged] = []
    lock = threading.Lock()

    def promote(version: str) -> None:
        barrier.wait()
        try:
            result = registry.promote(version, expected=expected, reason="race", metrics={})
            with lock:
                winners.append(result)
        except ChampionChanged as exc:
            with lock:
                losers.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert len(winners) == 1
    assert len(losers) == len(candidates) - 1
    assert registry.champion() == winners[0]


def test_record_decision(registry: ModelRegistry, storage: S3Storage) -> None:
    version = save(registry)
    assert registry.load_decision(version) is None
    key = registry.record_decision(version, {"promoted": False, "reason": "auc below floor"})
    assert key == f"models/{version}/decision.json"
    assert storage.get_json(key) == {"promoted": False, "reason": "auc below floor"}
    assert registry.load_decision(version) == {"promoted": False, "reason": "auc below floor"}
    with pytest.raises(UnknownVersion):
        registry.record_decision("20990101T000000Z-ffffff", {"promoted": True})


# -- promotions and rollback --------------------------------------------------------------------


def deployed(registry: ModelRegistry, n: int) -> list[str]:
    """``n`` versions deployed one after the other (auc 0.71, 0.72, ...)."""
    versions = []
    for i in range(n):
        version = save(registry, auc=0.71 + i / 100)
        registry.promote(
            version,
            expected=registry.champion(),
            reason=f"deploy {i}",
            metrics={"auc": 0.71 + i / 100},
        )
        versions.append(version)
    return versions


def log_of(registry: ModelRegistry) -> list[tuple[str, str, str | None]]:
    return [(p.kind, p.version, p.previous_version) for p in registry.promotions()]


def test_promote_records_each_deploy(registry: ModelRegistry, storage: S3Storage) -> None:
    v1, v2 = deployed(registry, 2)
    assert log_of(registry) == [("deploy", v2, v1), ("deploy", v1, None)]
    newest = registry.promotions()[0]
    assert newest.reason == "deploy 1" and newest.metrics == {"auc": 0.72}
    assert re.fullmatch(rf"models/promotions/\d{{8}}T\d{{12}}Z-deploy-{v2}\.json", newest.key)
    assert storage.get_json(newest.key)["at"] == registry.champion().promoted_at
    assert registry.promotions(limit=1) == [newest]
    assert registry.list_versions() == sorted([v1, v2]), "the log is not a version"
    assert registry.was_deployed(v1) and registry.was_deployed(v2)
    assert not registry.was_deployed(save(registry)), "saved, never deployed: held"


def test_promotion_records_are_create_only(registry: ModelRegistry, storage: S3Storage) -> None:
    (v1,) = deployed(registry, 1)
    key = registry.promotions()[0].key
    with pytest.raises(VersionExists):
        registry._put_once(key, b"{}", "application/json")
    assert storage.get_json(key)["version"] == v1


def test_rollback_defaults_to_the_previous_champion(registry: ModelRegistry) -> None:
    v1, v2 = deployed(registry, 2)
    before = registry.champion()
    restored = registry.rollback(reason="v2 scores look wrong", by="alice")
    assert restored == registry.champion()
    assert (restored.version, restored.previous_version, restored.kind) == (v1, v2, "rollback")
    assert restored.reason == "v2 scores look wrong" and restored.by == "alice"
    assert restored.metrics == {"auc": 0.71}, "the restored version's holdout metrics"
    assert restored.etag != before.etag
    assert log_of(registry) == [("rollback", v1, v2), ("deploy", v2, v1), ("deploy", v1, None)]
    assert registry.promotions()[0].by == "alice"
    assert not registry.was_deployed(save(registry))


def test_repeated_rollbacks_walk_back_through_the_deploys(registry: ModelRegistry) -> None:
    v1, v2, v3 = deployed(registry, 3)
    assert registry.rollback(reason="bad").version == v2
    assert registry.rollback_target() == v1, "not back to v3: no toggling"
    assert registry.rollback(reason="worse").version == v1
    with pytest.raises(RollbackRefused, match="nothing to roll back to"):
        registry.rollback(reason="again")
    v4 = save(registry)
    registry.promote(v4, expected=registry.champion(), reason="fixed", metrics={})
    assert registry.rollback_target() == v1
    assert [p.version for p in registry.promotions()] == [v4, v1, v2, v3, v2, v1]


def test_rollback_to_an_explicit_version(registry: ModelRegistry) -> None:
    v1, _, v3 = deployed(registry, 3)
    restored = registry.rollback(v1, reason="back to the first")
    assert (restored.version, restored.previous_version) == (v1, v3)
    assert registry.champion().version == v1
    assert registry.rollback(v3, reason="it was fine after all").version == v3


def test_rollback_refusals_write_nothing(registry: ModelRegistry, storage: S3Storage) -> None:
    with pytest.raises(RollbackRefused, match="no champion"):
        registry.rollback(reason="x")
    v1, v2 = deployed(registry, 2)
    held = save(registry)
    champion, log = registry.champion(), log_of(registry)
    objects = {o.key: o.etag for o in storage.list_objects("models/")}
    cases = [
        ("20990101T000000Z-ffffff", UnknownVersion, "does not exist"),
        ("../champion", UnknownVersion, "not a model version"),
        ("promotions", UnknownVersion, "not a model version"),
        (v2, RollbackRefused, "is the champion already"),
        (held, RollbackRefused, "never was champion"),
    ]
    for version, error, message in cases:
        with pytest.raises(error, match=message):
            registry.rollback(version, reason="x")
    with pytest.raises(RollbackRefused, match="needs a reason"):
        registry.rollback(v1, reason="  ")
    assert registry.champion() == champion and log_of(registry) == log
    assert {o.key: o.etag for o in storage.list_objects("models/")} == objects


def test_rollback_against_a_stale_champion(registry: ModelRegistry) -> None:
    v1, v2 = deployed(registry, 2)
    seen = registry.champion()
    v3 = save(registry)
    registry.promote(v3, expected=seen, reason="newer", metrics={})
    with pytest.raises(ChampionChanged) as info:
        registry.rollback(v1, reason="x", expected=seen)
    assert info.value.current.version == v3
    assert [p.version for p in registry.promotions()] == [v3, v2, v1]


@pytest.mark.parametrize("attempt", range(4))
def test_rollback_racing_a_deploy_exactly_one_wins(registry: ModelRegistry, attempt: int) -> None:
    v1, v2 = deployed(registry, 2)
    challenger = save(registry)
    seen = registry.champion()
    barrier = threading.Barrier(2)
    outcomes: dict[str, Champion | ChampionChanged] = {}

    def run(name: str, move) -> None:
        barrier.wait()
        try:
            outcomes[name] = move()
        except ChampionChanged as exc:
            outcomes[name] = exc

    moves = {
        "rollback": lambda: registry.rollback(reason="race", expected=seen),
        "deploy": lambda: registry.promote(
            challenger, expected=seen, reason="race", metrics={"auc": 0.9}
        ),
    }
    threads = [threading.Thread(target=run, args=item) for item in moves.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    won = {n: o for n, o in outcomes.items() if isinstance(o, Champion)}
    lost = {n: o for n, o in outcomes.items() if isinstance(o, ChampionChanged)}
    assert len(won) == 1 and len(lost) == 1, outcomes
    (winner,) = won.values()
    (loser,) = lost.values()
    assert registry.champion() == winner
    assert loser.current == winner, "the loser is told who won"
    assert winner.version == (v1 if "rollback" in won else challenger)
    assert log_of(registry) == [
        (winner.kind, winner.version, v2),
        ("deploy", v2, v1),
        ("deploy", v1, None),
    ], "only the winner is recorded"


def test_a_missing_record_is_shown_and_repaired(registry: ModelRegistry, storage: S3Storage):
    """A crash between the swap and its record: the log still shows the champion's move, and
    the next promote writes the record."""
    v1, v2 = deployed(registry, 2)
    newest = registry.promotions()[0]
    storage.delete(newest.key)
    shown = registry.promotions()
    assert [(p.version, p.key) for p in shown] == [(v2, ""), (v1, shown[1].key)]
    assert registry.rollback(reason="x").version == v1
    assert storage.get_json(newest.key)["version"] == v2, "repaired before the swap"
    assert log_of(registry) == [("rollback", v1, v2), ("deploy", v2, v1), ("deploy", v1, None)]


def test_a_pointer_from_before_the_log(registry: ModelRegistry, storage: S3Storage) -> None:
    """champion.json as older code wrote it (no kind, no record): a deploy, shown in the log,
    rolled back through its previous_version, recorded when it is replaced."""
    v1, v2 = save(registry), save(registry)
    storage.put_json(
        registry.champion_key,
        {
            "version": v2,
            "deployed_at": "2026-11-22T01:30:00+00:00",
            "reason": "old code",
            "metrics": {"auc": 0.8},
            "previous_version": v1,
        },
    )
    champion = registry.champion()
    assert champion.kind == "deploy" and champion.promoted_at == "2026-11-22T01:30:00+00:00"
    assert log_of(registry) == [("deploy", v2, v1)]
    assert registry.was_deployed(v2) and registry.rollback_target() == v1
    registry.rollback(reason="x")
    assert log_of(registry) == [("rollback", v1, v2), ("deploy", v2, v1)]
    assert registry.promotions()[1].key.startswith("models/promotions/20261122T013000000000Z-")


# -- one decision per deploy, the newest decision, the champion below the floor ----------------


def decided(
    registry: ModelRegistry, at: datetime, record: dict, *, refit_at: datetime | None = None
) -> tuple[str, str | None]:
    """A judged version with its decision and, for ``refit_at``, its serving refit whose record
    names it, as refit_for_serving leaves them (the evaluated record updated too)."""
    version = save(registry, registry.new_version(at), auc=record.get("auc", 0.8))
    out = record | {"version": version}
    serving = None
    if refit_at is not None:
        serving = registry.new_version(refit_at)
        registry.save_version(
            serving,
            model_text="refit",
            metadata={"metrics": {"auc": 0.8}, "refit_of": version},
            reference_profile={},
        )
        out = out | {"serving_version": serving}
        registry.record_decision(serving, out)
    registry.record_decision(version, out)
    return version, serving


FLOOR_HOLD = {
    "deploy": False,
    "rule": "below_floor",
    "reason": "hold: challenger auc 0.5940 < floor 0.6000",
    "conditions": {"floor": {"challenger": 0.594, "floor": 0.6, "passed": False}},
    "comparison": {"metric": "auc", "challenger": 0.594, "champion": 0.58, "delta": 0.014},
    "policy": {"gate": {"metric": "auc", "min_metric": 0.6}},
}


def test_the_newest_decision_skips_refit_copies_and_reads_little(
    registry: ModelRegistry, storage: S3Storage
) -> None:
    now = datetime.now(UTC)
    assert registry.newest_decision(now=now) is None
    decided(registry, now - timedelta(days=400), {"deploy": True, "rule": "better"})
    assert registry.newest_decision(now=now) is None, "older than the widest window"
    v1, r1 = decided(
        registry,
        now - timedelta(days=3),
        {"deploy": True, "rule": "better"},
        refit_at=now - timedelta(days=3) + timedelta(minutes=5),
    )
    newest = registry.newest_decision(now=now)
    assert newest is not None and newest["version"] == v1 and newest["serving_version"] == r1
    registry.promote(r1, expected=None, reason="better", metrics={})  # promotions/ sort later
    v2, _ = decided(registry, now - timedelta(hours=2), FLOOR_HOLD)
    assert registry.newest_decision(now=now)["version"] == v2


def test_models_lists_one_row_per_decision_with_its_serving_version(
    registry: ModelRegistry,
) -> None:
    from retrain.cli.models import model_rows

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    v1, r1 = decided(
        registry,
        t0,
        {"deploy": True, "rule": "better", "reason": "deploy: better"},
        refit_at=t0 + timedelta(minutes=5),
    )
    v2, _ = decided(registry, t0 + timedelta(days=1), FLOOR_HOLD)
    registry.promote(r1, expected=None, reason="better", metrics={})
    rows = model_rows(registry, "auc", None)
    assert [(r["version"], r["decision"], r["serving"], r["champion"]) for r in rows] == [
        (v2, "hold", "", False),
        (v1, "deploy", r1, True),
    ]
    assert [r["version"] for r in model_rows(registry, "auc", 1)] == [v2]


def test_the_watchdog_sees_a_champion_below_the_floor_until_another_model_serves(
    registry: ModelRegistry, storage: S3Storage, config
) -> None:
    from dataclasses import replace

    from retrain import watchdog
    from retrain.alerts import Incidents
    from retrain.layout import Layout

    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    now = datetime.now(UTC)
    _, r1 = decided(
        registry,
        now - timedelta(days=2),
        {"deploy": True, "rule": "first_model"},
        refit_at=now - timedelta(days=2, minutes=-5),
    )
    champion = registry.promote(r1, expected=None, reason="first", metrics={})
    v2, _ = decided(registry, now - timedelta(hours=1), FLOOR_HOLD | {"champion_version": r1})
    incidents = Incidents(storage, Layout.of(cfg))

    def tick() -> list[str]:
        facts = watchdog.gather(storage, cfg, now=now)
        return [a.subject for a in watchdog.apply(incidents, watchdog.check(facts, cfg.watchdog))]

    facts = watchdog.gather(storage, cfg, now=now)
    assert f"the champion {r1} scored 0.5800" in facts.champion_below_floor and v2 in (
        facts.champion_below_floor
    )
    assert "[retrain] WARNING: champion below the floor" in tick()
    assert incidents.get(watchdog.FLOOR_INCIDENT) is not None
    assert not [s for s in tick() if "floor" in s], "one alert per incident, not per tick"
    # a model above the floor serves: a deploy of a newer decision
    _, r3 = decided(
        registry,
        now - timedelta(minutes=30),
        {"deploy": True, "rule": "better"},
        refit_at=now - timedelta(minutes=25),
    )
    registry.promote(r3, expected=champion, reason="better", metrics={})
    assert "[retrain] RECOVERED: champion below the floor: cleared" in tick()
    assert incidents.get(watchdog.FLOOR_INCIDENT) is None
