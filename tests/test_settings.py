"""The environment and a local .env file become Settings (monitor/settings.py); a bad value is named."""

from __future__ import annotations

import pytest

from monitor.cli import main
from monitor.settings import Settings, SettingsError


@pytest.fixture
def clean(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "MENTION_MONITOR_RULES", "MENTION_MONITOR_LOG_LEVEL", "MENTION_MONITOR_METRICS_PORT",
                 "MENTION_MONITOR_LEASE_TTL", "X_BEARER_TOKEN", "SLACK_BOT_TOKEN", "MENTION_MONITOR_REPLICA_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_environment_wins_over_the_env_file_and_names_ignore_case(clean, tmp_path):
    (tmp_path / ".env").write_text(
        "# local run\n"
        "export DATABASE_URL=sqlite:///local.db   # the file\n"
        "mention_monitor_rules='my rules.yaml'\n"
        'X_BEARER_TOKEN="AAAA\\"quoted#not a comment"\n'
        "MENTION_MONITOR_METRICS_PORT=9464\n"
        "MENTION_MONITOR_LOG_LEVEL=DEBUG\n"
        "SLACK_BOT_TOKEN=xoxb-${HOME}\n"
        "not a setting\n", encoding="utf-8")
    clean.setenv("mention_monitor_log_level", "WARNING")
    clean.setenv("MENTION_MONITOR_REPLICA_ID", "")  # empty: not set
    settings = Settings()
    assert settings.database_url == "sqlite:///local.db"
    assert settings.rules == "my rules.yaml"
    assert settings.x_bearer_token.get_secret_value() == 'AAAA"quoted#not a comment'
    assert settings.metrics_port == 9464
    assert settings.log_level == "WARNING"
    assert settings.slack_bot_token.get_secret_value() == "xoxb-${HOME}"  # nothing expanded
    assert settings.replica_id == ""
    # the environment alone, and arguments over both
    assert Settings(_env_file=None).database_url == "sqlite:///mention-monitor.db"
    assert Settings(rules="other.yaml").rules == "other.yaml"
    assert "AAAA" not in repr(settings) and "AAAA" not in str(settings.model_dump())


def test_a_value_that_cannot_be_used_names_its_variable(clean, capsys):
    clean.setenv("MENTION_MONITOR_LEASE_TTL", "-5")
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert str(caught.value) == ("environment variable MENTION_MONITOR_LEASE_TTL='-5': Input should be greater "
                                 "than 0 (see .env.example)")
    clean.delenv("MENTION_MONITOR_LEASE_TTL")
    clean.setenv("MENTION_MONITOR_METRICS_PORT", "nine")
    assert main(["run", "--once", "--db", "sqlite:///x.db"]) == 2
    assert capsys.readouterr().err.strip() == (
        "environment variable MENTION_MONITOR_METRICS_PORT='nine': Input should be a valid integer, unable to "
        "parse string as an integer (see .env.example)")
