"""Alert rules over a monitor's window metrics, their firing/resolved state, and notifiers.

A rule reads `METRIC OP NUMBER` ("drift_share > 0.3", "p99_ms >= 50", "drift.age > 0.2").
Each window is checked in order; a rule writes an event only when its state changes (it starts
firing, or it resolves), so a problem that lasts a day is one alert, not one per window. A
window where the metric has no value (no labels yet, too few rows) leaves the state as it was.
Notifiers get each event after it is stored: `log`, `file` (one JSON line each) and `webhook`
(a JSON POST, retried with backoff, sent from a thread so nothing waits on it).
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.monitoring.monitors import Monitor

log = logging.getLogger("loopml")

FIRING = "firing"
RESOLVED = "resolved"
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
# The metrics every monitor window has; `drift.COLUMN` names one column's drift statistic.
METRICS = (
    "rows",
    "requests",
    "error_rate",
    "client_error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "drift_share",
    "drifted_columns",
    "dataset_drift",
    "prediction_drift",
    "prediction_drifted",
    "labelled_rows",
    "accuracy",
    "f1",
    "roc_auc",
    "rmse",
    "mae",
    "accuracy_change",
    "f1_change",
    "roc_auc_change",
    "rmse_change",
    "mae_change",
)
_RULE = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")
WEBHOOK_TRIES = 4
WEBHOOK_TIMEOUT_S = 5.0  # per connect and per read
WEBHOOK_DEADLINE_S = 30.0  # a delivery, its retries included, gives up after this long


@dataclass(frozen=True)
class Rule:
    """One alert condition: `metric op value`."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: object, columns: Iterable[str] = ()) -> Rule:
        """Return the rule `text` reads; InvalidInput naming what is wrong and the metrics."""
        if not isinstance(text, str):
            raise InvalidInput(f"an alert rule is text like 'drift_share > 0.3', not {text!r}")
        match = _RULE.fullmatch(text)
        if match is None:
            raise InvalidInput(
                f"alert rule {text!r} is not METRIC OP NUMBER, for example 'drift_share > 0.3' "
                "or 'p99_ms >= 50' (operators: > >= < <= == !=)"
            )
        metric, op, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(f"alert rule {text!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise InvalidInput(f"alert rule {text!r}: the threshold must be a finite number")
        known = set(columns)
        if metric.startswith("drift."):
            if known and metric.removeprefix("drift.") not in known:
                raise InvalidInput(
                    f"alert rule {text!r}: the monitor watches no column "
                    f"{metric.removeprefix('drift.')!r}; columns: {', '.join(sorted(known))}"
                )
        elif metric not in METRICS:
            raise InvalidInput(
                f"alert rule {text!r}: unknown metric {metric!r}; metrics: {', '.join(METRICS)} "
                "or drift.COLUMN"
            )
        return cls(metric, op, value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def holds(self, metrics: dict[str, Any]) -> bool | None:
        """Return whether the rule holds on one window's metrics (None: the metric is unset)."""
        value = metrics.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return OPERATORS[self.op](float(value), self.value)


@dataclass(frozen=True)
class Alert:
    """An event: a rule of a monitor started firing or resolved at a window."""

    monitor: str
    deployment: str
    rule: str
    state: str
    value: float | None
    window_start: int
    message: str
    created_at: int
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


def transitions(
    monitor: Monitor,
    states: dict[str, str],
    windows: list[tuple[int, dict[str, Any]]],
    now: int,
) -> list[Alert]:
    """Return the events of rules changing state over `windows` (oldest first), updating
    `states` (rule text -> FIRING/RESOLVED) in place."""
    events = []
    for start, metrics in windows:
        for rule in monitor.rules:
            holds = rule.holds(metrics)
            if holds is None:
                continue
            key, was = str(rule), states.get(str(rule), RESOLVED)
            now_state = FIRING if holds else RESOLVED
            if now_state == was:
                continue
            states[key] = now_state
            value = float(metrics[rule.metric])
            verb = "firing" if holds else "resolved"
            message = f"{monitor.name}: {rule} {verb} ({rule.metric} = {value:.6g})"
            events.append(
                Alert(monitor.name, monitor.deployment, key, now_state, value, start, message, now)
            )
    return events


class Notifier:
    """Where alert events go; `send` must not raise."""

    kind = "notifier"

    def send(self, alert: Alert) -> None:
        """Deliver one event."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the settings to store."""
        return {"kind": self.kind}


class LogNotifier(Notifier):
    """Log each event on the `loopml` logger (a warning when firing)."""

    kind = "log"

    def send(self, alert: Alert) -> None:
        """Log one event."""
        level = logging.WARNING if alert.state == FIRING else logging.INFO
        log.log(level, "alert %s", alert.message)


class FileNotifier(Notifier):
    """Append each event to a file as one JSON line."""

    kind = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    @classmethod
    def checked(cls, path: str | Path) -> FileNotifier:
        """Return a notifier for `path` once it is a file that can be written (made)."""
        made = cls(path)
        if made.path.is_dir():
            raise InvalidInput(f"alert file {made.path} is a folder; name a file to append to")
        existing = next(p for p in (made.path, *made.path.parents) if p.exists())
        if existing != made.path and not existing.is_dir():
            raise InvalidInput(
                f"alert file {made.path} cannot be made: {existing} is a file, not a folder"
            )
        if not os.access(existing, os.W_OK):
            raise InvalidInput(f"alert file {made.path} cannot be written: {existing} is read-only")
        return made

    def send(self, alert: Alert) -> None:
        """Append one event."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(alert.to_dict(), allow_nan=False) + "\n")
        except OSError as exc:
            log.error(  # noqa: TRY400 - one line names the problem; a traceback adds nothing
                "alert file %s could not be written: %s (%s)", self.path, exc, alert.message
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings to store."""
        return {"kind": self.kind, "path": str(self.path)}


class WebhookNotifier(Notifier):
    """POST each event as JSON; retried with backoff on errors and 5xx, from a thread."""

    kind = "webhook"

    def __init__(self, url: str, *, tries: int = WEBHOOK_TRIES, backoff_s: float = 0.5) -> None:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or re.search(r"\s", url)
        ):
            raise InvalidInput(
                f"webhook {url!r} is not an http(s) URL; use e.g. http://127.0.0.1:9000/hook"
            )
        self.url, self.tries, self.backoff_s = url, tries, backoff_s
        self._threads: list[threading.Thread] = []

    def send(self, alert: Alert) -> None:
        """Start delivering one event in the background."""
        thread = threading.Thread(target=self._deliver, args=(alert,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout: float = WEBHOOK_DEADLINE_S + WEBHOOK_TIMEOUT_S) -> None:
        """Wait, at most `timeout` seconds, for the deliveries started so far (a short-lived
        process calls this before it exits); say which are left behind."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            log.error(
                "webhook %s: %d alert(s) still not delivered after %.0f s; given up",
                self.url,
                len(self._threads),
                timeout,
            )

    def _deliver(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), allow_nan=False).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        problem = ""
        # A hook that trickles its answer resets the read timeout on every byte: each try is
        # also bounded by what is left of the delivery's deadline.
        deadline = time.monotonic() + WEBHOOK_DEADLINE_S
        for attempt in range(self.tries):
            left = deadline - time.monotonic()
            if left <= 0:
                problem = f"no answer within {WEBHOOK_DEADLINE_S:.0f} s"
                break
            try:
                timeout = min(WEBHOOK_TIMEOUT_S, left)
                with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                    if answer.status < 300:
                        return
                    problem = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break  # the hook refuses this body; sending it again will not help
            except (urllib.error.URLError, OSError) as exc:
                problem = str(exc)
            if attempt + 1 < self.tries:
                time.sleep(self.backoff_s * 2**attempt)
        log.error("webhook %s did not take alert %r: %s", self.url, alert.message, problem)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings to store."""
        return {"kind": self.kind, "url": self.url}


def notifier(settings: dict[str, Any]) -> Notifier:
    """Return the notifier stored as `settings`."""
    kind = settings.get("kind")
    if kind == "log":
        return LogNotifier()
    if kind == "file":
        return FileNotifier(settings["path"])
    if kind == "webhook":
        return WebhookNotifier(settings["url"])
    raise InvalidInput(f"unknown notifier {kind!r}; notifiers: log, file, webhook")
