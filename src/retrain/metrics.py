"""The pipeline's own StatsD metrics, and the settings that send Airflow's StatsD to the same place.

A few lines of UDP instead of a client library: the library stays stdlib-only and free of
Airflow, and a metric is fire-and-forget, so sending never raises (a metric must never fail a
pipeline task: problems are logged at debug and dropped). ``Metrics.from_config`` returns a
no-op client while ``[metrics] statsd_host`` is empty, so callers never branch on "is it on".

Every name goes out as ``<prefix>.<name>`` (``retrain.`` by default); Airflow's own metrics go to
``<prefix>.airflow.*`` (see ``airflow_statsd_env``). The catalogue, the only names emitted:

============================== ======= ==========================================================
name                           type    meaning
============================== ======= ==========================================================
ingest.files_accepted          counter files of a batch that passed validation (per batch)
ingest.files_quarantined       counter files of a batch moved to quarantine (per batch)
ingest.rows_accepted           counter rows in the accepted files (per batch)
retrain.max_psi                gauge   the largest per-feature PSI of the last retrain
retrain.challenger_metric      gauge   the challenger's gate metric on the new holdout
retrain.champion_metric        gauge   the deployed model's gate metric after the decision
retrain.deployed               gauge   1 if the last retrain deployed its challenger, else 0
watchdog.data_age_hours        gauge   hours since the newest curated data arrived
watchdog.champion_age_hours    gauge   hours since the deployed model was trained
watchdog.landing_wait_minutes  gauge   minutes the oldest file in landing/ has been waiting
watchdog.open_incidents        gauge   incidents open in the ledger
============================== ======= ==========================================================
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import socket
from types import TracebackType
from typing import Self

from retrain.config import MetricsConfig

log = logging.getLogger(__name__)

INGEST_FILES_ACCEPTED = "ingest.files_accepted"
INGEST_FILES_QUARANTINED = "ingest.files_quarantined"
INGEST_ROWS_ACCEPTED = "ingest.rows_accepted"
RETRAIN_MAX_PSI = "retrain.max_psi"
RETRAIN_CHALLENGER_METRIC = "retrain.challenger_metric"
RETRAIN_CHAMPION_METRIC = "retrain.champion_metric"
RETRAIN_DEPLOYED = "retrain.deployed"
WATCHDOG_DATA_AGE_HOURS = "watchdog.data_age_hours"
WATCHDOG_CHAMPION_AGE_HOURS = "watchdog.champion_age_hours"
WATCHDOG_LANDING_WAIT_MINUTES = "watchdog.landing_wait_minutes"
WATCHDOG_OPEN_INCIDENTS = "watchdog.open_incidents"

COUNTERS = (INGEST_FILES_ACCEPTED, INGEST_FILES_QUARANTINED, INGEST_ROWS_ACCEPTED)
GAUGES = (
    RETRAIN_MAX_PSI,
    RETRAIN_CHALLENGER_METRIC,
    RETRAIN_CHAMPION_METRIC,
    RETRAIN_DEPLOYED,
    WATCHDOG_DATA_AGE_HOURS,
    WATCHDOG_CHAMPION_AGE_HOURS,
    WATCHDOG_LANDING_WAIT_MINUTES,
    WATCHDOG_OPEN_INCIDENTS,
)
AIRFLOW_PREFIX_SUFFIX = "airflow"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")  # ':', '|', '@' and newlines would break the line format


class Metrics:
    """A StatsD client over UDP: one socket per instance, opened on the first send.

    The host is resolved once, on that first send; if it does not resolve, the client gives up
    for its lifetime rather than pay a DNS timeout per metric inside a task.
    """

    def __init__(self, host: str = "", port: int = 8125, prefix: str = "") -> None:
        self.host = host
        self.port = port
        self.prefix = prefix
        self._sock: socket.socket | None = None
        self._addr: tuple | None = None
        self._broken = False

    @classmethod
    def from_config(cls, cfg: MetricsConfig) -> Metrics:
        """The client ``cfg`` describes; a no-op one while ``cfg.statsd_host`` is empty."""
        return cls(cfg.statsd_host, cfg.statsd_port, cfg.prefix)

    @property
    def enabled(self) -> bool:
        return bool(self.host) and not self._broken

    def gauge(self, name: str, value: float) -> None:
        """Set a gauge. Non-finite values are dropped: no StatsD backend can store them."""
        if not _finite(value):
            log.debug("metric %s: dropping non-finite gauge %r", name, value)
            return
        full = self._name(name)
        # a leading sign makes a StatsD gauge relative, so a negative value is set via zero
        lines = [f"{full}:0|g"] if value < 0 else []
        self._send("\n".join([*lines, f"{full}:{_number(value)}|g"]))

    def incr(self, name: str, count: int = 1) -> None:
        if not isinstance(count, numbers.Integral):  # numpy integers are Integral too
            log.debug("metric %s: dropping non-integer count %r", name, count)
            return
        self._send(f"{self._name(name)}:{int(count)}|c")

    def timing(self, name: str, ms: float) -> None:
        if not _finite(ms):
            log.debug("metric %s: dropping non-finite timing %r", name, ms)
            return
        self._send(f"{self._name(name)}:{_number(ms)}|ms")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _name(self, name: str) -> str:
        full = f"{self.prefix}.{name}" if self.prefix else name
        return _UNSAFE.sub("_", full)

    def _send(self, line: str) -> None:
        if not self.enabled:
            return
        try:
            if self._sock is None:
                family, _, _, _, addr = socket.getaddrinfo(
                    self.host, self.port, type=socket.SOCK_DGRAM
                )[0]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)  # a full send buffer drops the metric, never waits
                self._sock, self._addr = sock, addr
            self._sock.sendto(line.encode("ascii", "replace"), self._addr)
        except socket.gaierror as exc:
            self._broken = True
            log.debug("statsd host %r does not resolve, metrics off: %s", self.host, exc)
        except Exception as exc:  # a metric must never fail the caller
            log.debug("statsd send to %s:%s failed: %s", self.host, self.port, exc)


def record_batch(m: Metrics, accepted: int, quarantined: int, rows: int) -> None:
    """One ingested batch: its accepted and quarantined files, and the accepted rows."""
    m.incr(INGEST_FILES_ACCEPTED, accepted)
    m.incr(INGEST_FILES_QUARANTINED, quarantined)
    m.incr(INGEST_ROWS_ACCEPTED, rows)


def record_decision(
    m: Metrics,
    challenger_metric: float,
    champion_metric: float | None,
    max_psi: float | None,
    deployed: bool,
) -> None:
    """One retrain's gate decision; pass ``Decision``'s fields as they are.

    ``champion_metric`` is the champion's metric *before* the decision (None: there was none),
    while the gauge is the deployed model's *after* it, so a deploy records the challenger's.
    None and NaN values are not emitted (``max_psi`` is None without a drift reference).
    """
    after = challenger_metric if deployed else champion_metric
    m.gauge(RETRAIN_CHALLENGER_METRIC, challenger_metric)
    if after is not None:
        m.gauge(RETRAIN_CHAMPION_METRIC, after)
    if max_psi is not None:
        m.gauge(RETRAIN_MAX_PSI, max_psi)
    m.gauge(RETRAIN_DEPLOYED, 1 if deployed else 0)


def record_health(
    m: Metrics,
    data_age_hours: float | None,
    champion_age_hours: float | None,
    landing_wait_minutes: float | None,
    open_incidents: int,
) -> None:
    """One watchdog pass. None means "nothing to measure" (no data, no model, landing empty)."""
    for name, value in (
        (WATCHDOG_DATA_AGE_HOURS, data_age_hours),
        (WATCHDOG_CHAMPION_AGE_HOURS, champion_age_hours),
        (WATCHDOG_LANDING_WAIT_MINUTES, landing_wait_minutes),
    ):
        if value is not None:
            m.gauge(name, value)
    m.gauge(WATCHDOG_OPEN_INCIDENTS, open_incidents)


def airflow_statsd_env(cfg: MetricsConfig) -> dict[str, str]:
    """Environment that turns Airflow's own StatsD metrics on, to the same host, under
    ``<prefix>.airflow``; empty while metrics are off. Airflow's components (scheduler,
    triggerer, dag processor, API server, task runner) read it when they start.
    """
    if not cfg.statsd_host:
        return {}
    prefix = f"{cfg.prefix}.{AIRFLOW_PREFIX_SUFFIX}" if cfg.prefix else AIRFLOW_PREFIX_SUFFIX
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": cfg.statsd_host,
        "AIRFLOW__METRICS__STATSD_PORT": str(cfg.statsd_port),
        "AIRFLOW__METRICS__STATSD_PREFIX": prefix,
    }


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def _number(value: float) -> str:
    """Whole numbers without a trailing ``.0``, others in full (``repr``) precision."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
