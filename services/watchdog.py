"""`radstream watch`: a separate process that notices stalled, hung and dead stage processes.

The supervisor (`radstream up`) restarts children that *exit*; it cannot see one that
is alive but stuck. The watchdog follows every registered stage process through its
`/healthz` and `/metrics`, warns, and (locally) SIGKILLs a process that stays stuck, so
the supervisor restarts it. On Kubernetes the liveness probe restarts pods and the
watchdog runs with `restart=False` (alert only).

`decide` is the whole policy, a pure function of the previous tracks, the new
observations and the clock. Everything else here only observes or carries out actions.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from radstream.domain.retry import RetryPolicy
from radstream.services.webhooks import check_secret, check_webhook_url, post_json, redact_url, signed_headers

log = logging.getLogger(__name__)

LAG_METRIC = "radstream_consumer_lag"


# -- the policy (pure) ----------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    warn_after_s: float = 300.0
    restart_after_s: float = 600.0
    restart: bool = True  # False on Kubernetes: the liveness probe restarts, we only alert


@dataclass(frozen=True)
class Observation:
    """One look at one registered stage process."""

    key: str  # the registration, `<stage>-<pid>`
    label: str  # `preprocess`, `infer:demo-classifier`
    pid: int | None  # None for a bare health URL (`--target`)
    pid_alive: bool
    answered: bool  # /healthz answered at all
    healthy: bool = True  # what /healthz said (503 = False)
    lag: int | None = None  # summed over the partitions it has assigned; None = unknown
    processed: int | None = None
    error: str = ""  # why /healthz did not answer


@dataclass(frozen=True)
class Track:
    """What the watchdog remembers about one process between looks."""

    label: str
    pid: int | None
    progress_at: float  # last time it made progress or had no backlog
    processed: int | None = None
    down_since: float | None = None  # first look in the current run of failed/unhealthy probes
    level: int = 0  # 0 fine, 1 warned, 2 restarted (or escalated with restart off)
    condition: str = ""  # what was alerted: stalled | unresponsive | unhealthy


@dataclass(frozen=True)
class Alert:
    kind: str  # stalled | unresponsive | unhealthy | restarting | escalated | dead | recovered
    label: str
    pid: int | None
    text: str


@dataclass(frozen=True)
class Kill:
    key: str
    label: str
    pid: int
    reason: str


@dataclass(frozen=True)
class Forget:
    """The process is gone: its registration file is stale."""

    key: str


Action = Alert | Kill | Forget


def _who(label: str, pid: int | None) -> str:
    return f"{label} (pid {pid})" if pid is not None else label


def decide(tracks: dict[str, Track], observations: Iterable[Observation], now: float,
           policy: Policy) -> tuple[dict[str, Track], list[Action]]:
    """The next tracks and the actions to take. Processes not observed any more are dropped."""
    new: dict[str, Track] = {}
    actions: list[Action] = []
    for obs in observations:
        track = tracks.get(obs.key) or Track(obs.label, obs.pid, progress_at=now, processed=obs.processed)
        who = _who(track.label, obs.pid)
        if not obs.pid_alive:
            if track.level < 2 or not policy.restart:  # not one we just killed ourselves
                actions.append(Alert("dead", track.label, obs.pid,
                                     f"{who} is dead: its registration is stale (it exited without cleaning up). "
                                     "Under `radstream up` or Kubernetes it is restarted."))
            actions.append(Forget(obs.key))
            continue
        if obs.answered:
            track = replace(track, label=obs.label)  # infer's model name is known once it answers
        if obs.answered and obs.healthy:
            track, acts = _follow_progress(track, obs, now, policy, who)
        else:
            condition = "unhealthy" if obs.answered else "unresponsive"
            why = "/healthz reports unhealthy" if obs.answered else f"/healthz does not answer ({obs.error or 'no reply'})"
            track = replace(track, down_since=track.down_since if track.down_since is not None else now)
            track, acts = _escalate(track, obs, condition, now - track.down_since, why, now, policy, who)
        actions += acts
        new[obs.key] = track
    return new, actions


def _follow_progress(track: Track, obs: Observation, now: float, policy: Policy,
                     who: str) -> tuple[Track, list[Action]]:
    backlog = obs.lag or 0
    progressed = backlog == 0 or (obs.processed is not None and obs.processed != track.processed)
    track = replace(track, processed=obs.processed, down_since=None)
    if progressed:
        acts: list[Action] = []
        if track.level:
            acts.append(Alert("recovered", track.label, obs.pid, f"{who} recovered: it is answering and making progress"))
        return replace(track, progress_at=now, level=0, condition=""), acts
    why = f"lag {backlog} and no message processed"
    return _escalate(track, obs, "stalled", now - track.progress_at, why, now, policy, who)


def _escalate(track: Track, obs: Observation, condition: str, for_s: float, why: str, now: float,
              policy: Policy, who: str) -> tuple[Track, list[Action]]:
    if for_s >= policy.restart_after_s and track.level < 2:
        text = f"{who} {condition} for {for_s:.0f}s ({why})"
        if policy.restart and obs.pid is not None:
            return replace(track, level=2, condition=condition), [
                Alert("restarting", track.label, obs.pid, f"{text}: killing it (SIGKILL) so its supervisor restarts it"),
                Kill(obs.key, track.label, obs.pid, text)]
        note = "no pid to signal: restart it by hand" if policy.restart else \
            "not restarting (--no-restart): the liveness probe or an operator must"
        return replace(track, level=2, condition=condition), [Alert("escalated", track.label, obs.pid, f"{text}; {note}")]
    if for_s >= policy.warn_after_s and track.level == 0:
        restart = f"restart after {policy.restart_after_s:.0f}s" if policy.restart else "no restart (alert only)"
        return replace(track, level=1, condition=condition), [
            Alert(condition, track.label, obs.pid, f"{who} {condition} for {for_s:.0f}s ({why}); {restart}")]
    return track, []


def slack_payload(alert: Alert, host: str = "") -> dict:
    """Slack-compatible incoming-webhook body (Mattermost, Teams connectors and most chat bridges accept it)."""
    icon = {"recovered": ":white_check_mark:", "dead": ":skull:", "restarting": ":recycle:"}.get(alert.kind, ":warning:")
    where = f" on {host}" if host else ""
    return {"text": f"{icon} radstream watch{where}: [{alert.kind}] {alert.text}"}


# -- observing (the shell) ----------------------------------------------------------------
def lag_of(metrics_text: str, partitions: Iterable[int]) -> int | None:
    """Sum of `radstream_consumer_lag` over the assigned partitions (revoked ones keep stale gauges)."""
    wanted = {str(p) for p in partitions}
    total, seen = 0, False
    for family in text_string_to_metric_families(metrics_text):
        if family.name != LAG_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("partition") in wanted:
                total += int(sample.value)
                seen = True
    return total if seen else None


def _process_alive(pid: int, stage: str) -> bool:
    """Alive and still our stage: a zombie, or a pid reused by another program, counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return True  # no procfs: trust the signal check
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"stage" in args and stage.encode() in args


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:  # a 503 is an answer
        return exc.code, exc.read()


def probe(key: str, stage: str, pid: int | None, health_url: str, timeout_s: float) -> Observation:
    if pid is not None and not _process_alive(pid, stage):
        return Observation(key, stage, pid, pid_alive=False, answered=False, error="process gone")
    try:
        status, body = _get(health_url + "/healthz", timeout_s)
        health = json.loads(body)
    except (OSError, ValueError) as exc:
        return Observation(key, stage, pid, pid_alive=True, answered=False, error=str(exc) or type(exc).__name__)
    label = stage + (f":{health['models'][0]['name']}" if health.get("models") else "")
    lag = None
    try:
        _, text = _get(health_url + "/metrics", timeout_s)
        lag = lag_of(text.decode(), health.get("partitions", []))
    except (OSError, ValueError) as exc:
        log.debug("metrics of %s unreadable: %s", key, exc)
    return Observation(key, label, pid, pid_alive=True, answered=True,
                       healthy=status == 200 and bool(health.get("healthy", True)),
                       lag=lag, processed=health.get("processed"))


def registrations(folder: Path) -> list[tuple[str, str, int | None, str]]:
    """(key, stage, pid, health URL) of every `<stage>-<pid>.json` in the run directory."""
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
            out.append((path.stem, entry["stage"], int(entry["pid"]), entry["health_url"].rstrip("/")))
        except (OSError, ValueError, KeyError) as exc:  # being written right now, or foreign: next look
            log.debug("skipping %s: %s", path, exc)
    return out


# -- alerting -----------------------------------------------------------------------------
class WebhookNotifier:
    """Posts alerts from a background thread, with retries, so a slow webhook never delays a restart.

    The forwarder's controls (services/webhooks.py): https unless `allow_http`, every body signed
    with `secret` (X-Radstream-Signature), a 3xx a failure that is never followed nor retried, and
    the URL (a Slack hook's path is its secret) shown as scheme and host only."""

    def __init__(self, url: str | None, secret: bytes | None = None, allow_http: bool = False, attempts: int = 4,
                 backoff_s: float = 0.5, timeout_s: float = 5.0) -> None:
        if url:
            check_webhook_url(url, allow_http, carries="alerts name hosts, stages and studies' lag")
            check_secret(secret or b"")
        self.url = url
        self.shown_url = redact_url(url) if url else None
        self._secret = secret or b""
        self.retry = RetryPolicy(attempts, backoff_s)
        self.timeout_s = timeout_s
        self.host = socket.gethostname()
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="webhook", daemon=True)
        if url:
            self._thread.start()

    def notify(self, alert: Alert) -> None:
        level = logging.INFO if alert.kind == "recovered" else logging.WARNING
        log.log(level, "[%s] %s", alert.kind, alert.text)
        if self.url:
            self._queue.put(slack_payload(alert, self.host))

    def deliver(self, payload: dict) -> bool:
        """POST one payload; True once the webhook accepted it."""
        data = json.dumps(payload).encode()
        headers = signed_headers(self._secret, data, "radstream-watch/1")
        for attempt in self.retry.attempts():
            try:
                status = post_json(self.url or "", data, headers, self.timeout_s)
            except OSError as exc:  # refused, reset, DNS, timeout
                status, why = 0, f"{type(exc).__name__}: {exc}".replace(self.url or "", self.shown_url or "")
            else:
                why = f"HTTP {status}"
            if 200 <= status < 300:
                return True
            if 300 <= status < 400:
                log.error("webhook %s answered %s (a redirect, not followed: configure the final URL); alert only "
                          "logged: %s", self.shown_url, why, payload["text"])
                return False
            log.warning("webhook %s attempt %d/%d failed: %s", self.shown_url, attempt, self.retry.max_attempts, why)
            if self.retry.retries_after(attempt):
                time.sleep(self.retry.delay(attempt))
        log.error("webhook %s gave up after %d attempts; alert only logged: %s", self.shown_url,
                  self.retry.max_attempts, payload["text"])
        return False

    def _work(self) -> None:
        while (payload := self._queue.get()) is not None:
            self.deliver(payload)

    def close(self, timeout_s: float = 10.0) -> None:
        if self.url:
            self._queue.put(None)
            self._thread.join(timeout_s)


# -- the loop -----------------------------------------------------------------------------
class Watchdog:
    def __init__(self, run_dir: Path, policy: Policy, notifier: WebhookNotifier,
                 probe_timeout_s: float = 2.0, targets: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.policy = policy
        self.notifier = notifier
        self.probe_timeout_s = probe_timeout_s
        self.targets = [t.rstrip("/") for t in targets]
        self.tracks: dict[str, Track] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")

    def observe(self) -> list[Observation]:
        regs = registrations(self.run_dir) + [(url, url, None, url) for url in self.targets]
        return list(self._pool.map(lambda r: probe(*r, self.probe_timeout_s), regs))

    def tick(self, now: float | None = None) -> list[Action]:
        observations = self.observe()
        self.tracks, actions = decide(self.tracks, observations, time.monotonic() if now is None else now, self.policy)
        for action in sorted(actions, key=lambda a: not isinstance(a, Kill)):  # kill first, then talk
            self._carry_out(action)
        return actions

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, Kill):
            try:
                os.kill(action.pid, signal.SIGKILL)
                log.warning("killed %s", _who(action.label, action.pid))
            except ProcessLookupError:
                pass  # gone already: the point was for it to go
            except PermissionError as exc:
                self.notifier.notify(Alert("escalated", action.label, action.pid,
                                           f"cannot kill {_who(action.label, action.pid)}: {exc}"))
        elif isinstance(action, Forget):
            (self.run_dir / f"{action.key}.json").unlink(missing_ok=True)
        else:
            self.notifier.notify(action)

    def run(self, interval_s: float, stopping: Callable[[], bool]) -> None:
        while not stopping():
            started = time.monotonic()
            self.tick(started)
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.notifier.close()
