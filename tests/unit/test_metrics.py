"""StatsD metrics over real UDP sockets on loopback: what arrives, in which format, and that
nothing a metric does can fail its caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain import metrics as mx
from retrain.config import MetricsConfig
from retrain.metrics import (
    Metrics,
    airflow_statsd_env,
    record_batch,
    record_decision,
    record_health,
)

TIMEOUT = 10.0  # seconds a receive may wait; packets on loopback arrive in microseconds
SENTINEL = "sentinel"


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    try:
        yield sock
    finally:
        sock.close()


def _client(server: socket.socket, prefix: str = "retrain") -> Metrics:
    port = server.getsockname()[1]
    return Metrics.from_config(
        MetricsConfig(statsd_host="127.0.0.1", statsd_port=port, prefix=prefix)
    )


def _lines_until_sentinel(server: socket.socket, m: Metrics) -> list[str]:
    """Every line sent before the sentinel: loopback UDP keeps order, so no waiting for silence."""
    m.incr(SENTINEL)
    lines: list[str] = []
    while True:
        packet = server.recv(65535).decode()
        for line in packet.split("\n"):
            if line.split(":")[0].endswith(f".{SENTINEL}"):
                return lines
            lines.append(line)


def _emitted(server: socket.socket, m: Metrics) -> dict[str, str]:
    """name (without the prefix) -> "value|type" of the lines sent before the sentinel."""
    out = {}
    for line in _lines_until_sentinel(server, m):
        name, rest = line.split(":", 1)
        out[name.removeprefix(f"{m.prefix}.")] = rest
    return out


def test_gauges_counters_and_timings_arrive_prefixed_in_statsd_format(
    server: socket.socket,
) -> None:
    with _client(server) as m:
        m.gauge("a.gauge", 0.25)
        m.gauge("whole", 3.0)
        m.incr("a.counter")
        m.incr("a.counter", 5)
        m.timing("a.timer", 12.5)
        lines = _lines_until_sentinel(server, m)
    assert lines == [
        "retrain.a.gauge:0.25|g",
        "retrain.whole:3|g",
        "retrain.a.counter:1|c",
        "retrain.a.counter:5|c",
        "retrain.a.timer:12.5|ms",
    ]


def test_a_negative_gauge_is_set_absolutely_and_odd_values_are_dropped(
    server: socket.socket,
) -> None:
    with _client(server, prefix="p") as m:
        m.gauge("neg", -0.5)  # "-0.5|g" alone would mean "decrease by 0.5"
        m.gauge("nan", float("nan"))
        m.gauge("inf", float("inf"))
        m.incr("half", 0.5)  # type: ignore[arg-type]
        m.gauge("bad:name|x", 1)
        lines = _lines_until_sentinel(server, m)
    assert lines == ["p.neg:0|g", "p.neg:-0.5|g", "p.bad_name_x:1|g"]


def test_the_disabled_client_sends_nothing_and_never_raises(server: socket.socket) -> None:
    off = Metrics.from_config(MetricsConfig())
    assert not off.enabled
    with off:
        off.gauge("x", 1)
        off.incr("x")
        off.timing("x", 1)
        record_batch(off, 1, 1, 1)
        record_decision(off, 0.9, 0.8, 0.1, True)
        record_health(off, 1.0, 2.0, 3.0, 4)
    assert off._sock is None, "a disabled client never opens a socket"
    with _client(server) as on:  # the first thing the server receives is the sentinel
        assert _lines_until_sentinel(server, on) == []


def test_a_closed_port_does_not_raise() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with Metrics("127.0.0.1", port, "retrain") as m:
        for i in range(20):  # ICMP "port unreachable" comes back between sends
            m.gauge("x", i)
            m.incr("y")
            m.timing("z", i)
        assert m.enabled


def test_an_unresolvable_host_does_not_raise_and_turns_the_client_off() -> None:
    with Metrics.from_config(MetricsConfig(statsd_host="no-such-host.invalid")) as m:
        m.gauge("x", 1)
        m.incr("y")
        assert not m.enabled, "one failed lookup, not one per metric"


def test_close_is_idempotent_and_a_closed_client_reopens_on_send(server: socket.socket) -> None:
    m = _client(server)
    m.incr("before")
    m.close()
    m.close()
    m.incr("after")
    assert _lines_until_sentinel(server, m) == ["retrain.before:1|c", "retrain.after:1|c"]
    m.close()


def test_record_batch_emits_the_three_ingest_counters(server: socket.socket) -> None:
    with _client(server) as m:
        record_batch(m, accepted=3, quarantined=1, rows=120)
        assert _emitted(server, m) == {
            mx.INGEST_FILES_ACCEPTED: "3|c",
            mx.INGEST_FILES_QUARANTINED: "1|c",
            mx.INGEST_ROWS_ACCEPTED: "120|c",
        }


def test_record_decision_on_a_deploy_records_the_challenger_as_champion(
    server: socket.socket,
) -> None:
    with _client(server) as m:
        record_decision(m, challenger_metric=0.91, champion_metric=0.88, max_psi=0.3, deployed=True)
        assert _emitted(server, m) == {
            mx.RETRAIN_CHALLENGER_METRIC: "0.91|g",
            mx.RETRAIN_CHAMPION_METRIC: "0.91|g",
            mx.RETRAIN_MAX_PSI: "0.3|g",
            mx.RETRAIN_DEPLOYED: "1|g",
        }


def test_record_decision_on_a_hold_keeps_the_old_champion(server: socket.socket) -> None:
    with _client(server) as m:
        record_decision(
            m, challenger_metric=0.8, champion_metric=0.88, max_psi=None, deployed=False
        )
        assert _emitted(server, m) == {
            mx.RETRAIN_CHALLENGER_METRIC: "0.8|g",
            mx.RETRAIN_CHAMPION_METRIC: "0.88|g",
            mx.RETRAIN_DEPLOYED: "0|g",
        }
        # first run held (no champion before or after), challenger undefined: only "not deployed"
        record_decision(m, float("nan"), None, None, deployed=False)
        assert _emitted(server, m) == {mx.RETRAIN_DEPLOYED: "0|g"}


def test_record_health_emits_the_watchdog_gauges_and_skips_none(server: socket.socket) -> None:
    with _client(server) as m:
        record_health(m, 5.5, 30.0, 12.0, open_incidents=2)
        assert _emitted(server, m) == {
            mx.WATCHDOG_DATA_AGE_HOURS: "5.5|g",
            mx.WATCHDOG_CHAMPION_AGE_HOURS: "30|g",
            mx.WATCHDOG_LANDING_WAIT_MINUTES: "12|g",
            mx.WATCHDOG_OPEN_INCIDENTS: "2|g",
        }
        record_health(m, None, None, None, open_incidents=0)
        assert _emitted(server, m) == {mx.WATCHDOG_OPEN_INCIDENTS: "0|g"}


def test_the_catalogue_is_the_documented_one() -> None:
    names = set(mx.COUNTERS) | set(mx.GAUGES)
    assert len(names) == len(mx.COUNTERS) + len(mx.GAUGES) == 11
    for name in names:
        assert f"\n{name} " in mx.__doc__, f"{name} missing from the docstring table"


def test_airflow_statsd_env_maps_the_config() -> None:
    assert airflow_statsd_env(MetricsConfig()) == {}
    cfg = MetricsConfig(statsd_host="statsd.internal", statsd_port=9125, prefix="shop")
    assert airflow_statsd_env(cfg) == {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "statsd.internal",
        "AIRFLOW__METRICS__STATSD_PORT": "9125",
        "AIRFLOW__METRICS__STATSD_PREFIX": "shop.airflow",
    }


# What every Airflow 3.3 component (scheduler, triggerer, dag processor, API server, task runner)
# does at start: Stats is a no-op until initialized from the [metrics] config.
_AIRFLOW_EMIT = textwrap.dedent(
    """
    from airflow.configuration import conf
    from airflow.observability import stats
    from airflow.observability.metrics import stats_utils

    stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
    )
    stats.Stats.incr("test_metric")
    """
)


def test_airflow_statsd_delivers_to_the_configured_socket(
    server: socket.socket, tmp_path: Path
) -> None:
    port = server.getsockname()[1]
    cfg = MetricsConfig(statsd_host="127.0.0.1", statsd_port=port, prefix="retrain")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), **airflow_statsd_env(cfg)}
    run = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_EMIT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    received: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:  # Airflow sends a few metrics of its own as well
            received += server.recv(65535).decode().split("\n")
            if "retrain.airflow.test_metric:1|c" in received:
                return
    except TimeoutError:
        pass
    pytest.fail(f"Airflow's metric did not arrive; got {received}")
