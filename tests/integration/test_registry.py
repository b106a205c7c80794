from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from retrain.registry import (
    Champion,
    ChampionChanged,
    ModelRegistry,
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
