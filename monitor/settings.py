"""Secrets and endpoints, from the environment only (never rules.yaml, never logged).

Each setting is one environment variable: the name in its `validation_alias`, else the field's name
in capitals (`database_url` is DATABASE_URL); names are matched without regard to case.  For local
runs a `.env` file in the working directory is read too, and the environment wins over it.  An empty
value counts as not set.  Our own reader (it was pydantic-settings, whose sources for clouds, TOML,
YAML and command lines cost the daemon 31 modules and ~4 MB it never used; BENCHMARKS.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from monitor import messages as msg
from monitor.store import DEFAULT_DATABASE_URL


class SettingsError(ValueError):
    """A variable's value cannot be used; the message names the variable (and never a secret's value)."""


class Settings(BaseModel):
    """The environment wins over a `.env` file in the working directory (for local runs).
    `Settings(_env_file=None)` reads the environment alone; keyword arguments win over both."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    def __init__(self, _env_file: str | Path | None = ".env", **values: Any) -> None:
        found = read_environment(type(self), env_file=_env_file)
        try:
            super().__init__(**{**found, **values})
        except ValidationError as exc:
            raise SettingsError(_explain(type(self), exc, found)) from None

    database_url: str = DEFAULT_DATABASE_URL
    rules: str = Field(default="rules.yaml", validation_alias=AliasChoices("MENTION_MONITOR_RULES"))
    sandbox_url: str = Field(default="", validation_alias=AliasChoices("MENTION_MONITOR_SANDBOX_URL"))
    replica_id: str = Field(default="", validation_alias=AliasChoices("MENTION_MONITOR_REPLICA_ID"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("MENTION_MONITOR_LOG_LEVEL"))
    metrics_port: int = Field(default=0, validation_alias=AliasChoices("MENTION_MONITOR_METRICS_PORT"))
    # chat.postMessage per Slack channel: Slack's documented pace; 0 turns our pacing off
    slack_rate: float = Field(default=1.0, validation_alias=AliasChoices("MENTION_MONITOR_SLACK_RATE"))
    slack_burst: int = Field(default=10, validation_alias=AliasChoices("MENTION_MONITOR_SLACK_BURST"))
    # seconds a replica holds a source's lease without renewing it, and an outbox row it claimed
    lease_ttl: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("MENTION_MONITOR_LEASE_TTL"))
    claim_ttl: float = Field(default=60.0, gt=0, validation_alias=AliasChoices("MENTION_MONITOR_CLAIM_TTL"))

    x_bearer_token: SecretStr = SecretStr("")
    x_api_key: SecretStr = SecretStr("")
    x_api_secret: SecretStr = SecretStr("")
    x_access_token: SecretStr = SecretStr("")
    x_access_token_secret: SecretStr = SecretStr("")
    facebook_page_token: SecretStr = SecretStr("")
    # Page webhooks (off unless a port is set): the app secret signs events, the verify token the handshake
    facebook_app_secret: SecretStr = SecretStr("")
    facebook_verify_token: SecretStr = SecretStr("")
    facebook_webhook_port: int = Field(default=0, validation_alias=AliasChoices("MENTION_MONITOR_FACEBOOK_WEBHOOK_PORT"))
    facebook_webhook_host: str = Field(default="127.0.0.1",
                                       validation_alias=AliasChoices("MENTION_MONITOR_FACEBOOK_WEBHOOK_HOST"))
    facebook_webhook_cert: str = Field(default="", validation_alias=AliasChoices("MENTION_MONITOR_FACEBOOK_WEBHOOK_CERT"))
    facebook_webhook_key: str = Field(default="", validation_alias=AliasChoices("MENTION_MONITOR_FACEBOOK_WEBHOOK_KEY"))
    slack_bot_token: SecretStr = SecretStr("")
    slack_app_token: SecretStr = SecretStr("")
    slack_api_url: str = ""  # SLACK_API_URL: the Web API's base (default https://slack.com/api/), e.g. behind a proxy
    slack_signing_secret: SecretStr = SecretStr("")


def env_name(model: type[BaseModel], field: str) -> str:
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field.upper()


def read_environment(model: type[BaseModel], *, env_file: str | Path | None) -> dict[str, str]:
    """Each field's raw value, by field name: from os.environ, else from the .env file."""
    from_file = read_env_file(Path(env_file)) if env_file is not None and Path(env_file).is_file() else {}
    environ = {key.upper(): value for key, value in os.environ.items()}
    found = {}
    for field in model.model_fields:
        name = env_name(model, field).upper()
        value = environ.get(name) or from_file.get(name)
        if value:
            found[field] = value
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (names in capitals); `#` comments, blank lines and a leading `export` are
    skipped.  A value in single quotes is taken as it is, in double quotes with \\n, \\t, \\" and \\\\
    read as escapes; an unquoted value ends at ` #`.  Nothing is expanded (`${HOME}` stays as written)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = _unescape(value[1:-1])
        else:
            for comment in (" #", "\t#"):
                if comment in value:
                    value = value[:value.index(comment)].rstrip()
        values[name.strip().upper()] = value
    return values


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _explain(model: type[BaseModel], exc: ValidationError, found: dict[str, str]) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if field not in model.model_fields:
            problems.append(error["msg"])
            continue
        secret = model.model_fields[field].annotation is SecretStr
        shown = "(hidden)" if secret else repr(found.get(field, ""))
        problems.append(msg.SETTINGS_BAD.format(name=env_name(model, field), value=shown, problem=error["msg"]))
    return "\n".join(problems)
