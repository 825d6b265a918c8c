"""With SLACK_APP_TOKEN set and Slack unreachable at start, the daemon starts anyway, keeps trying
Socket Mode on a back-off, and says so in its log and on /healthz (it exited with rc 1)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from monitor.runtime.metrics import HealthCheck, Metrics
from monitor.runtime.wiring import build_daemon, start_slack_app
from monitor.settings import Settings
from tests.reliability.helpers import ROOT, clean_env, write_rules


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused, as to an unreachable Slack."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_socket_mode_retries_on_a_back_off_and_healthz_says_it_is_not_connected(tmp_path, simple_rules,
                                                                                 simple_rules_file, clock, caplog,
                                                                                 monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-a-real-token")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-not-a-real-token")
    slack = f"http://127.0.0.1:{closed_port()}/api/"
    monkeypatch.setenv("SLACK_API_URL", slack)
    settings = Settings(_env_file=None)
    daemon = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", clock=clock, sources={})
    daemon.metrics = Metrics()
    health = HealthCheck(metrics=daemon.metrics, engine=daemon.engine, intervals={}, now=clock.now,
                         started_at=clock.now())
    supervisor = start_slack_app(daemon, settings=settings, base_url=slack, start=False)
    waits = []
    with caplog.at_level(logging.WARNING, logger="monitor.runtime.socket_mode"):
        for _ in range(3):
            assert supervisor.attempt() is False
            waits.append((supervisor.next_attempt_at - clock.now()).total_seconds())
            clock.set(supervisor.next_attempt_at)
    assert 3.75 <= waits[0] <= 5 and 7.5 <= waits[1] <= 10 and 15 <= waits[2] <= 20, waits
    report = health()
    assert report.ok is False
    state = report.checks["slack_socket_mode"]
    assert state["ok"] is False and state["detail"].startswith("not connected: Slack unreachable (")
    assert "(failure 3, next attempt " in state["detail"]
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.runtime.socket_mode"]
    assert len(lines) == 3 and lines[0].startswith(
        "Slack Socket Mode (buttons, /mentions, App Home) not connected: Slack unreachable (")
    assert "alerts still go out, trying again in " in lines[0] and lines[0].endswith("(failure 1)")
    assert "xapp-not-a-real-token" not in "".join(lines) + json.dumps(report.checks)
    supervisor.close()
    daemon.engine.dispose()


def test_run_with_slack_unreachable_starts_and_stays_up(tmp_path):
    port = closed_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    rules = write_rules(tmp_path / "rules.yaml")
    env = clean_env(SLACK_BOT_TOKEN="xoxb-not-a-real-token", SLACK_APP_TOKEN="xapp-not-a-real-token",
                    SLACK_API_URL=f"http://127.0.0.1:{port}/api/", MENTION_MONITOR_METRICS_PORT=str(metrics_port))
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--rules", str(rules),
                                 "--db", f"sqlite:///{tmp_path / 'mm.db'}"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            body = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2)
                except urllib.error.HTTPError as exc:  # 503 while something is down
                    body = json.loads(exc.read())
                    if "slack_socket_mode" in body["checks"]:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            assert proc.poll() is None, log_path.read_text()
            assert body is not None and body["checks"]["slack_socket_mode"]["ok"] is False, body
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Slack Socket Mode (buttons, /mentions, App Home) not connected: Slack unreachable" in log_path.read_text()


def test_a_refused_app_token_and_a_websocket_that_never_opens_are_not_reported_connected(
        tmp_path, sandbox, simple_rules, simple_rules_file, clock, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-a-real-token")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-a-bot-token-in-the-wrong-place")
    daemon = build_daemon(settings=Settings(_env_file=None), ruleset=simple_rules, rules_path=str(simple_rules_file),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", clock=clock, sources={}, sandbox_url=sandbox.url)
    daemon.metrics = Metrics()
    refused = start_slack_app(daemon, settings=Settings(_env_file=None), base_url=sandbox.url, start=False)
    assert refused.attempt() is False
    assert (refused.next_attempt_at - clock.now()).total_seconds() == 60  # AUTH_PROBES: a person must act
    assert daemon.metrics.components()["slack_socket_mode"]["detail"].startswith(
        "not connected: Slack refused SLACK_APP_TOKEN (not_allowed_token_type) (failure 1")
    # the sandbox's apps.connections.open answers with a wss:// URL on a host that does not resolve
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-sandbox")
    no_socket = start_slack_app(daemon, settings=Settings(_env_file=None), base_url=sandbox.url, start=False)
    assert no_socket.attempt() is False
    assert no_socket.handle is None
    assert daemon.metrics.components()["slack_socket_mode"] == {"ok": False, "detail": (
        "not connected: Slack gave a Socket Mode URL, but its WebSocket did not connect (failure 1, next attempt "
        f"{no_socket.next_attempt_at.isoformat()})")}
    daemon.engine.dispose()
