"""Secrets and endpoints, from the environment only (never rules.yaml, never logged)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.store import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """The environment wins over a `.env` file in the working directory (for local runs)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=".env",
                                      env_file_encoding="utf-8")

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
