"""`mention-monitor doctor`: checks rules, database and every token, and says how to fix what is wrong.

Each check prints one OK / WARN / FAIL line (a FAIL also says what to do); the exit code is 0 when
nothing failed, 1 otherwise.  Tokens are checked with one cheap call each (Slack auth.test, X
GET /2/users/me, Graph GET /{page-id}) through the connectors, so the core imports no SDK.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from connectors.platforms import FACEBOOK, X
from monitor import messages as msg
from monitor.settings import Settings

if TYPE_CHECKING:
    from monitor.rules.schema import Ruleset


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    text: str  # the line(s) printed
    warn: bool = False


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check configuration, tokens, database and rules")
    parser.add_argument("--rules", help="rules file (default: $MENTION_MONITOR_RULES or rules.yaml)")
    parser.add_argument("--db", help="database URL (default: $DATABASE_URL)")
    parser.add_argument("--sandbox-url", help="check against a sandbox of the platforms' APIs")
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = Settings()
    checks = run_checks(settings=settings, rules_path=args.rules or settings.rules,
                        db_url=args.db or settings.database_url, sandbox_url=args.sandbox_url or settings.sandbox_url)
    return report(checks, out=sys.stdout)


def report(checks: list[Check], *, out: TextIO) -> int:
    for check in checks:
        print(check.text, file=out)
    failed = sum(1 for c in checks if not c.ok)
    print(msg.DOCTOR_SUMMARY_FAIL.format(failed=failed, count=len(checks)) if failed
          else msg.DOCTOR_SUMMARY_OK.format(count=len(checks)), file=out)
    return 1 if failed else 0


def run_checks(*, settings: Settings, rules_path: str, db_url: str, sandbox_url: str = "") -> list[Check]:
    checks: list[Check] = []
    if sandbox_url:
        checks.append(_ok("configuration", msg.DOCTOR_SANDBOX.format(url=sandbox_url)))
    ruleset, rules_check = _rules(rules_path)
    checks.append(rules_check)
    checks.append(_database(db_url))
    checks.append(_slack(settings, sandbox_url))
    checks.append(_socket_mode(settings, sandbox_url))
    if ruleset is not None and (sandbox_url or settings.slack_bot_token.get_secret_value()):
        checks.append(_channels(settings, ruleset, sandbox_url))
    platforms = {s.platform for s in ruleset.sources} if ruleset is not None else {"x", "facebook"}
    checks.append(_x(settings, ruleset, sandbox_url) if "x" in platforms
                  else _ok("x", msg.DOCTOR_UNUSED.format(platform="X")))
    checks.append(_facebook(settings, ruleset, sandbox_url) if "facebook" in platforms
                  else _ok("facebook", msg.DOCTOR_UNUSED.format(platform="Facebook")))
    return checks


# --------------------------------------------------------------------------- checks


def _ok(name: str, detail: str) -> Check:
    return Check(name, True, msg.DOCTOR_OK.format(check=name, detail=detail))


def _warn(name: str, detail: str) -> Check:
    return Check(name, True, msg.DOCTOR_WARN.format(check=name, detail=detail), warn=True)


def _fail(name: str, problem: str, fix: str) -> Check:
    return Check(name, False, msg.DOCTOR_FAIL.format(check=name, problem=problem, fix=fix))


def _rules(path: str) -> tuple[Ruleset | None, Check]:
    from pathlib import Path

    from monitor.rules import RulesError, load_rules

    if not Path(path).exists():
        return None, _fail("rules", msg.DOCTOR_RULES_MISSING.format(path=path), msg.DOCTOR_RULES_MISSING_FIX)
    try:
        ruleset = load_rules(path)
    except RulesError as exc:
        errors = "\n".join(f"      {line}" for line in exc.errors)
        return None, _fail("rules", msg.DOCTOR_RULES_BAD.format(path=path, errors=errors), msg.DOCTOR_RULES_BAD_FIX)
    return ruleset, _ok("rules", msg.DOCTOR_RULES_OK.format(path=path, rules=len(ruleset.rules),
                                                            sources=len(ruleset.sources)))


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the connection attempt itself
        return url.split("@")[-1]


def _database(url: str) -> Check:
    import sqlalchemy as sa

    from monitor import migrations
    from monitor.store import make_engine

    shown = _safe_url(url)
    try:
        engine = make_engine(url)
    except Exception as exc:  # a malformed URL or a missing driver
        return _fail("database", msg.DOCTOR_DB_FAIL.format(url=shown, reason=type(exc).__name__),
                     msg.DOCTOR_DB_FAIL_FIX)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("setting"):
                return _warn("database", msg.DOCTOR_DB_NO_SCHEMA.format(url=shown))
            found = migrations.current(conn)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return _fail("database", msg.DOCTOR_DB_FAIL.format(url=shown, reason=reason.replace(url, shown)),
                     msg.DOCTOR_DB_FAIL_FIX)
    finally:
        engine.dispose()
    wanted = migrations.head()
    if found != wanted:  # None: made before migrations; `run` or `db upgrade` stamps it
        return _fail("database", msg.DOCTOR_DB_VERSION.format(url=shown, found=found or "none (made before migrations)",
                                                              wanted=wanted), msg.DOCTOR_DB_VERSION_FIX)
    return _ok("database", msg.DOCTOR_DB_OK.format(url=shown, version=found))


def _token_check(name: str, env: str, call: Callable[[], Check]) -> Check:
    from connectors.base import AuthFailed, ConnectorError, Transient

    try:
        return call()
    except AuthFailed as exc:
        return _fail(name, msg.DOCTOR_TOKEN_FAIL.format(reason=exc), msg.DOCTOR_TOKEN_FAIL_FIX.format(env=env))
    except (Transient, ConnectorError) as exc:
        return _fail(name, msg.DOCTOR_TOKEN_FAIL.format(reason=exc), msg.DOCTOR_NETWORK_FAIL_FIX)


def _slack(settings: Settings, sandbox_url: str) -> Check:
    from monitor.runtime.wiring import SANDBOX_TOKEN

    token = "xoxb-" + SANDBOX_TOKEN if sandbox_url else settings.slack_bot_token.get_secret_value()
    if not token:
        return _fail("slack", msg.DOCTOR_SLACK_MISSING, msg.DOCTOR_SLACK_MISSING_FIX)

    def call() -> Check:
        from connectors.slack.notifier import SlackNotifier

        who = SlackNotifier(token=token, base_url=sandbox_url or None, timeout=10).check_auth()
        return _ok("slack", msg.DOCTOR_SLACK_OK.format(user=who.get("user", ""), team=who.get("team", "")))

    return _token_check("slack", "SLACK_BOT_TOKEN", call)


def _socket_mode(settings: Settings, sandbox_url: str) -> Check:
    from monitor.runtime.wiring import SANDBOX_TOKEN

    token = "xapp-" + SANDBOX_TOKEN if sandbox_url else settings.slack_app_token.get_secret_value()
    if not token:
        return _warn("socket mode", msg.DOCTOR_SOCKET_MISSING)

    def call() -> Check:
        from connectors.slack.notifier import check_app_token

        check_app_token(token=token, base_url=sandbox_url or None)
        return _ok("socket mode", msg.DOCTOR_SOCKET_OK)

    return _token_check("socket mode", "SLACK_APP_TOKEN", call)


def _channels(settings: Settings, ruleset: Ruleset | None, sandbox_url: str) -> Check:
    """Every channel rules.yaml names resolves to a channel, and the bot is in it."""
    from monitor.runtime.wiring import SANDBOX_TOKEN

    token = "xoxb-" + SANDBOX_TOKEN if sandbox_url else settings.slack_bot_token.get_secret_value()

    def call() -> Check:
        from connectors.slack.notifier import SlackNotifier

        seen = SlackNotifier(token=token, base_url=sandbox_url or None, timeout=10).channels()
        by_id = {channel_id: (name, member) for name, (channel_id, member) in seen.items()}
        problems = []
        for alias, channel in sorted(ruleset.channels.items()):
            name, member = seen.get(channel) or by_id.get(channel) or ("", False)
            if not name:
                problems.append(msg.DOCTOR_CHANNEL_UNKNOWN.format(channel=channel, alias=alias))
            elif not member:
                problems.append(msg.DOCTOR_CHANNEL_NOT_MEMBER.format(channel=channel, alias=alias))
        if problems:
            return _fail("channels", "; ".join(problems), msg.DOCTOR_CHANNELS_FIX)
        return _ok("channels", msg.DOCTOR_CHANNELS_OK.format(channels=", ".join(sorted(set(ruleset.channels.values())))))

    return _token_check("channels", "SLACK_BOT_TOKEN", call)


def _x(settings: Settings, ruleset: Ruleset | None, sandbox_url: str) -> Check:
    if not sandbox_url and not settings.x_bearer_token.get_secret_value():
        return _fail("x", msg.DOCTOR_X_MISSING, msg.DOCTOR_TOKEN_FAIL_FIX.format(env=X.secret_names[0]))

    def call() -> Check:
        from connectors.base import AuthFailed
        from monitor.runtime.wiring import _connector

        source = _connector("x", settings=settings, ruleset=_ruleset_or_default(ruleset), sandbox_url=sandbox_url,
                            path="")
        try:
            who = source.check_auth()
        except AuthFailed:
            if not source._user_auth:
                return _warn("x", msg.DOCTOR_X_READ_ONLY)
            raise
        return _ok("x", msg.DOCTOR_X_OK.format(username=who.get("username", "")))

    posting = X.secret_names[1:]  # the read token is checked above; these four post as the brand
    return _token_check("x", ", ".join(posting[:-1]) + " and " + posting[-1], call)


def _facebook(settings: Settings, ruleset: Ruleset | None, sandbox_url: str) -> Check:
    if not sandbox_url and not settings.facebook_page_token.get_secret_value():
        return _fail("facebook", msg.DOCTOR_FACEBOOK_MISSING, msg.DOCTOR_TOKEN_FAIL_FIX.format(env=FACEBOOK.secret_names[0]))

    def call() -> Check:
        from monitor.runtime.wiring import _connector

        source = _connector("facebook", settings=settings, ruleset=_ruleset_or_default(ruleset),
                            sandbox_url=sandbox_url, path="")
        page = source.check_auth()
        return _ok("facebook", msg.DOCTOR_FACEBOOK_OK.format(name=page.get("name", "")))

    return _token_check("facebook", FACEBOOK.secret_names[0], call)


def _ruleset_or_default(ruleset: Ruleset | None) -> Ruleset:
    """Token checks still run when rules.yaml is broken: the brand ids then come from the default file."""
    if ruleset is not None:
        return ruleset
    from pathlib import Path

    from monitor.rules import load_rules

    return load_rules(Path(__file__).resolve().parents[2] / "rules.yaml")
