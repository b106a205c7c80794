"""The report history on a real bucket: one immutable page per publication, newest first,
each showing up to PAGE_ROWS rows (earlier publications carried forward), nothing lost to a
concurrent publisher, and a publication writes only its own page."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from retrain.config import Config
from retrain.history import Entry, History
from retrain.layout import Layout
from retrain.storage import S3Storage


@pytest.fixture
def history(config: Config, storage: S3Storage) -> History:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    return History(storage, Layout.of(cfg))


def entry(n: int) -> Entry:
    return Entry(
        at=f"2026-11-30T10:00:{n:02d}+00:00", kind="file", name=f"f{n}.csv", status="passed"
    )


def test_pages_read_newest_first_and_link_older(history: History, storage: S3Storage) -> None:
    assert history.newest_page() == -1 and history.newest() == []
    history.append([entry(0), entry(1)])
    history.append([entry(2)])
    history.append([entry(3), entry(4), entry(5)])
    assert history.newest_page() == 2
    assert [e.name for e in history.page(0)] == ["f0.csv", "f1.csv"]
    assert [e.name for e in history.newest(4)] == ["f5.csv", "f4.csv", "f3.csv", "f2.csv"]
    first = storage.get_bytes("reports/history/page-000000.html").decode()
    last = storage.get_bytes("reports/history/page-000002.html").decode()
    assert "older" not in first
    # the newest page carries the earlier publications forward: all six rows, newest first
    assert "older" not in last
    shown = [f"f{n}.csv" for n in range(5, -1, -1)]
    assert [last.index(name) for name in shown] == sorted(last.index(name) for name in shown)


def test_a_page_holds_up_to_page_rows_and_older_visits_every_row_once(
    history: History, storage: S3Storage
) -> None:
    """Publications of 7 rows: whole ones carried while a page stays within PAGE_ROWS; the
    "older" links from the newest page walk back through every row exactly once."""
    import re

    from retrain.history import PAGE_ROWS

    n = 0
    for _ in range(40):  # 280 rows
        history.append([entry(n + i) for i in range(7)])
        n += 7
    newest = history.newest_page()
    seen: list[str] = []
    sizes = []
    page: int | None = newest
    reads = 0
    while page is not None:
        html = storage.get_bytes(f"reports/history/page-{page:06d}.html").decode()
        names = re.findall(r">(f\d+\.csv)<", html)
        sizes.append(len(names))
        seen += names
        older = re.search(r'href="page-(\d{6})\.html">older', html)
        page = int(older.group(1)) if older else None
        reads += 1
    assert seen == [f"f{k}.csv" for k in range(n - 1, -1, -1)], "every row once, newest first"
    assert max(sizes) <= PAGE_ROWS and sizes[0] > PAGE_ROWS - 7 and reads == 3
    # the index's reader uses the carried rows too
    assert [e.name for e in history.newest(110)] == [f"f{k}.csv" for k in range(n - 1, n - 111, -1)]


def test_a_publication_writes_its_own_page_only(history: History) -> None:
    for n in range(10):
        history.append([entry(n)])
    written = history.append([entry(10), entry(11)])
    assert written == [
        "reports/history/page-000010.json",
        "reports/history/page-000010.html",
        "reports/history/head.json",
    ]


def test_a_stale_hint_is_only_a_hint(history: History, storage: S3Storage) -> None:
    for n in range(3):
        history.append([entry(n)])
    storage.put_json("reports/history/head.json", {"page": 0})  # e.g. a publisher died before
    assert history.newest_page() == 2
    history.append([entry(3)])
    assert [e.name for e in history.page(3)] == ["f3.csv"]


def test_concurrent_publishers_lose_nothing(history: History) -> None:
    errors: list[BaseException] = []

    def publish(worker: int) -> None:
        try:
            for n in range(8):
                history.append([entry(worker * 10 + n)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    names = [e.name for n in range(history.newest_page() + 1) for e in history.page(n)]
    assert sorted(names) == sorted(f"f{w * 10 + n}.csv" for w in range(3) for n in range(8))
    assert history.newest_page() == 23, "one page per publication, no gaps"
