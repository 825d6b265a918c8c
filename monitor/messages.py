"""Every sentence a person reads, in one catalogue so wording is reviewed in one place."""

from __future__ import annotations

# --- slack messages ---
# Words shown in Slack alerts, buttons, ephemerals, /mentions, App Home and the console notifier.
# Placeholders are filled with str.format; values are escaped by the renderer BEFORE formatting.

SLACK_ALERT_FALLBACK = "{mark} {severity} {platform} mention from {author}: {text}"


def plural(forms: tuple[str, str], count: int, **values: object) -> str:
    """The catalogue's (one, other) forms of a sentence, picked for `count` and filled in.  English
    is the catalogue's only language and has these two forms; a language with more would add its own."""
    return (forms[0] if count == 1 else forms[1]).format(count=f"{count:,}", **values)


SLACK_GROUP_FALLBACK = ("{badge} {count} similar mention ({rule}): {text}", "{badge} {count} similar mentions ({rule}): {text}")
SLACK_GROUP_HEADLINE = ("{mark} *{count} similar mention* for rule `{rule}` · one line per case in the thread",
                        "{mark} *{count} similar mentions* for rule `{rule}` · one line per case in the thread, "
                        "each with its own buttons")
SLACK_GROUP_NEWEST = ("*Newest:*\n{lines}", "*Newest {shown}:*\n{lines}")
SLACK_GROUP_LINE = "{mark} #{case_id} {author} ({severity}{state}): {text}"
SLACK_GROUP_MORE = ("…and {count} more case in the thread", "…and {count} more cases in the thread")
SLACK_GROUP_MEMBERS_FALLBACK = ("{count} case of a storm: {cases}", "{count} cases of a storm: {cases}")
SLACK_PLAIN_ALERT = "{text}\n(case {case_id}: Slack refused the full alert; the buttons are missing)"
SLACK_HEADLINE = "{mark} *{severity}* · {platform} {kind} from {author}"
# Severity has its own mark; the coloured dot is only ever time left (alert, /mentions, App Home alike).
SLACK_SEVERITY_MARKS = {"critical": "🚨", "high": "❗", "normal": "🔷", "low": "▫️"}
SLACK_DEADLINE_BADGED = "{badge} {deadline}"
SLACK_AUTHOR = "{handle}{verified}{followers}"
SLACK_AUTHOR_NAMED = "{name} ({handle}){verified}{followers}"
SLACK_FOLLOWERS = " · {followers} followers"
SLACK_VERIFIED_MARK = " ✓ verified"
SLACK_OPEN_POST = "Open the post"
SLACK_OPEN_CONVERSATION = "Open the conversation in the Page inbox"
SLACK_FIELD_LANGUAGE = "*Language*\n{lang}"
SLACK_FIELD_SENTIMENT = "*Sentiment*\n{sentiment}"
SLACK_FIELD_COMPLAINT = "*Complaint*\n{complaint}"
SLACK_FIELD_RULE = "*Rule*\n`{rule}` ({severity})"
SLACK_SENTIMENT_UNKNOWN = "not scored"
SLACK_NO_CATEGORIES = "no category"
SLACK_MENTION_COUNT = "{count} messages in this conversation"
SLACK_TEXT_TRUNCATED = "… (shortened, open the post for the rest)"

SLACK_DEADLINE_LEFT = "respond by {due}, {left} left"
SLACK_DEADLINE_OVERDUE = "overdue by {late} (was due {due})"
SLACK_DEADLINE_NONE = "no response-time target"
SLACK_DEADLINE_DONE = "was due {due}"
SLACK_DEADLINE_HISTORY = "from history (backfill): no response-time countdown, nobody is paged"
SLACK_BREACHED = "response-time target missed, escalated"

SLACK_STATE_OPEN = "Open · nobody has claimed it yet"
SLACK_STATE_CLAIMED = "Claimed by {user}"
SLACK_STATE_ACKNOWLEDGED = "Acknowledged"
SLACK_STATE_ACK_POSTED = "public acknowledgement posted"
SLACK_STATE_AUTO_ACK = "acknowledged automatically at {at}, no person has answered yet"
SLACK_STATE_SNOOZED = "Snoozed until {until}"
SLACK_STATE_RESOLVED = "Resolved"
SLACK_MEMBER_STATE = "↳ {state}"  # under a grouped case's line once someone has it (claimed, resolved...)
SLACK_DRY_RUN = "Dry run: nothing is posted publicly. *Acknowledge publicly* would post (dry run): “{text}”"

SLACK_BUTTON_CLAIM = "Claim"
SLACK_BUTTON_ACK = "Acknowledge publicly"
SLACK_BUTTON_REPLY = "Reply…"
SLACK_BUTTON_RESOLVE = "Resolve"
SLACK_SNOOZE_PLACEHOLDER = "Snooze"
SLACK_SNOOZE_OPTIONS = (("30", "30 min"), ("60", "1 hour"), ("240", "4 hours"), ("tomorrow", "until tomorrow 09:00"))
SLACK_ACK_CONFIRM_TITLE = "Post this publicly?"
SLACK_ACK_CONFIRM_TITLE_DRY = "Dry run: would post"
SLACK_ACK_CONFIRM_YES = "Post it"
SLACK_ACK_CONFIRM_YES_DRY = "Record it"
SLACK_ACK_CONFIRM_NO = "Cancel"

SLACK_CHANNEL_UNKNOWN = ("Slack has no channel {channel} that the bot can see: check the name in rules.yaml "
                         "and invite the bot (/invite @mention-monitor)")

SLACK_REPLY_MODAL_TITLE = "Reply publicly"
SLACK_REPLY_MODAL_SUBMIT = "Post reply"
SLACK_REPLY_MODAL_CLOSE = "Cancel"
SLACK_REPLY_MODAL_INTRO = "Replying to {author} on {platform}:\n>{text}"
SLACK_REPLY_MODAL_LABEL = "Your reply (posted publicly, as the brand)"
SLACK_REPLY_MODAL_TITLE_CHOICE = "Reply"
SLACK_REPLY_MODAL_LABEL_CHOICE = "Your reply (as the brand; choose below: public, or in DM)"
SLACK_REPLY_EMPTY = "Write something before posting."
SLACK_REPLY_WHERE_LABEL = "Where"
SLACK_REPLY_WHERE_PUBLIC = "Public reply"
SLACK_REPLY_WHERE_DM = "🔒 Reply in DM (only the customer sees it)"
SLACK_REPLY_DM_CLOSED = "🔒 Reply in DM is not possible: {reason}"
SLACK_REPLY_DM_NOTE = "🔒 {reason}"
# monitor/cases/actions.py: may a person answer a public case in private (the platform's window)?
DM_X_NOT_YET = ("{author} has not written to {brand} in DM yet; X lets the brand send a DM only to someone "
                "who wrote first. Reply publicly with the DM link instead.")
DM_MESSENGER_NOT_YET = ("{author} has not answered the private reply in Messenger yet; a Page may send only one "
                        "private reply per comment, and may write again once they answer.")
DM_MESSENGER_NO_HANDOFF = ("{author} has no Messenger conversation with the Page yet; acknowledge the comment "
                           "(its private reply opens one).")
DM_MESSENGER_HUMAN_AGENT = ("Messenger's 24-hour window has closed; a person's answer still goes out with the "
                            "human-agent tag until {closes:%a %d %b %H:%M} UTC.")
DM_MESSENGER_CLOSED = ("Messenger's window for this conversation closed on {closed:%a %d %b %H:%M} UTC (7 days "
                       "after the customer's last message, with the human-agent tag); nothing can be sent until "
                       "they write again.")
DM_NOT_OFFERED = "this case is already a private conversation; use the normal reply"

SLACK_REFUSED_PUBLIC = (
    "Sorry, only the approvers set up for mention-monitor may post publicly for the brand. "
    "You can still claim, snooze or resolve this case; ask an approver to post."
)
SLACK_ACTION_FAILED = "That did not work: {message}"
SLACK_NOTHING_CHANGED = "Nothing to change: {message}"
SLACK_UNKNOWN_CASE = "This alert no longer matches a case mention-monitor knows."

SLACK_CMD_NO_CASES = "No open cases. Quiet for now. :sunny:"
SLACK_CMD_HEADER = ("*{count} open case, most urgent first*", "*{count} open cases, most urgent first*")
SLACK_CMD_LINE = "{badge} #{case_id} · {platform} {author} · `{rule}` · {deadline}{who}\n>{text}"
SLACK_CMD_LINE_WHO = " · {user}"
SLACK_CMD_MORE = "…and {count} more. Open the App Home tab for the full list."
SLACK_CMD_STATS_HEADER = "*Today so far*"
SLACK_CMD_STATS_LINE = "• {label}: *{value}*"
SLACK_CMD_HELP = ("Usage: `/mentions` lists open cases by time left; `/mentions stats` shows today's figures; "
                  "`/mentions mute author @name 4h` mutes (also keyword, rule), `/mentions mutes` lists the mutes.")

SLACK_HOME_TITLE = "mention-monitor"
SLACK_HOME_KPIS = "Today"
SLACK_HOME_UPDATED = "Updated {when} ({tz}). Reopen this tab to refresh."

CONSOLE_RULE = "─" * 60
CONSOLE_BUTTONS = "actions: {buttons}"
CONSOLE_UPDATED = "(alert {ts} updated)"
CONSOLE_THREAD = "  ↳ in thread {ts}:"
CONSOLE_EPHEMERAL = "(only {user} sees) {text}"
CONSOLE_FILES = "[{channel}] files: {names} — {title}"
# --- end slack messages ---

# --- rules messages ---
# rules.yaml loading.  Each error is printed as "FILE:LINE:COL: <message>".
RULES_CANNOT_READ = "cannot read this file: {reason}"
RULES_YAML_SYNTAX = "YAML syntax error: {problem}"
RULES_YAML_DUPLICATE_KEY = "key '{key}' appears twice in this mapping; keep only one"
RULES_TOO_DEEP = "the file nests too deeply, or an alias (*name) refers to itself"
RULES_TOO_BIG = "the file is larger than {limit} KB; a rules file is a few KB, so this is not one"
RULES_ALIAS_BOMB = ("aliases (*name) expand this file to more than {limit} values; "
                    "write the values out instead of repeating them through aliases")
RULES_ALIAS_LOOP = "this alias (*name) refers to a value that contains it; write the value out instead"
RULES_EMPTY = "the file is empty; copy the default rules.yaml and edit it"
RULES_NOT_MAPPING = "the file must be a mapping (version: 1, brand: ..., rules: ...), not {got}"
RULES_UNKNOWN_KEY = "unknown key '{key}' in {where}"
RULES_DID_YOU_MEAN = "; did you mean '{suggestion}'?"
RULES_TOP_LEVEL = "the top level of the file"
RULES_MISSING_KEY = "missing key '{key}' in {where}"
RULES_WRONG_TYPE = "{path}: expected {expected}, got {got}"
RULES_NOT_ONE_OF = "{path}: {value} is not one of {choices}"
RULES_OUT_OF_RANGE = "{path}: must be {op} {limit}, got {value}"
RULES_EMPTY_LIST = "{path}: list at least one item"
RULES_VALUE = "{path}: {problem}"
RULES_VERSION = "version {value} is not supported; this mention-monitor reads version 1"
RULES_DURATION = "'{value}' is not a duration; write a number and a unit, like 90s, 30m, 2h or 1d"
RULES_DURATION_NO_UNIT = "{value} has no unit; write it like {value}s, {value}m or {value}h"
RULES_DURATION_ZERO = "must be longer than 0s"
RULES_TIMEZONE = "unknown time zone '{value}'{hint}"
RULES_TIMEZONE_HINT = "; use a name from the IANA tz database, like Europe/Copenhagen"
RULES_HOURS = "'{value}' is not an opening-hours range; write it like \"08:00-18:00\""
RULES_HOURS_ORDER = "opening hours '{value}' close before they open; overnight ranges are not supported"
RULES_CLOCK = "'{value}' is not a time of day; write it like \"09:00\""
RULES_DATE = "'{value}' is not a date; write it like 2026-12-24, or 12-24 for every year"
RULES_COUNTRY = "'{value}' is not a country the holiday calendar knows{hint}"
RULES_COUNTRY_HINT = "; use an ISO 3166 code such as DK, HR, RO, ID or CN"
RULES_RANGE_EMPTY = "give min, max or both"
RULES_RANGE_ORDER = "min {min} is greater than max {max}, so nothing can match"
RULES_REGEX = "bad regular expression '{pattern}': {error}"
RULES_WARN_AT = "must be a fraction of the SLA between 0 and 1, like 0.75; got {value}{hint}"
RULES_PERCENT_HINT = " (write {fraction:g} for {percent:g}%)"
RULES_PROBABILITY = "must be a probability between 0 and 1; got {value}{hint}"
RULES_SENTIMENT = "must be a sentiment score between -1 (most negative) and 1 (most positive); got {value}{hint}"
RULES_WHEN_EMPTY = ("an empty condition {{}} matches every mention; "
                    "write when: {{all: []}} if that is what you mean, or add a condition")
RULES_RULE_NO_WHEN = ("rule '{name}' has no 'when', so it would match every mention; "
                      "write when: {{all: []}} if that is what you mean")
RULES_BAD_DATE = "'{value}' is not a date on the calendar ({reason}); write it like 2026-12-24, or 12-24 for every year"
RULES_SLACK_ID = (
    "'{value}' is not a Slack user id (U.../W...) or user-group id (S...); "
    "copy it from the person's or group's profile in Slack"
)
RULES_LANGUAGE_CODE = "'{value}' is not a language code; use two or three lowercase letters, like en or da"
RULES_RULE_NO_ACTION = "rule '{name}' does nothing; give it alert, acknowledge or drop: true"
RULES_DROP_AND_ACTION = "rule '{name}' drops the mention, so its {action} would never happen; remove one of them"
RULES_DROP_CONTINUE = "rule '{name}' has both drop: true and continue: true; a dropped mention goes no further"
RULES_SEARCH_QUERY = "source '{name}' searches X but has no query; add one, like query: '\"your brand\" -is:retweet'"
RULES_QUERY_NOT_SEARCH = "source '{name}' has a query but kind '{kind}'; only kind: search uses a query"
RULES_SOURCE_KIND = "source '{name}': {platform} has no kind '{kind}'; use one of {choices}"
RULES_REPLAY_PATH = "source '{name}' replays a file but has no path; add path: examples/mentions.jsonl"
RULES_ESCALATION_ORDER = (
    "escalation step {index} starts after {after}, earlier than the step before it ({previous}); "
    "list the steps in time order"
)
RULES_SPIKE_HISTORY = "spike.history ({history}) must be longer than spike.window ({window})"
RULES_DEFAULT_LANGUAGE = "brand.default_language '{lang}' is not in brand.languages ({languages})"
# cross-reference pass
RULES_UNDEFINED_TEMPLATE = "template '{name}' used by rule '{rule}' is not defined"
RULES_UNDEFINED_CHANNEL = "channel '{alias}' used by {user} is not defined under channels"
RULES_UNDEFINED_SOURCE = "source '{name}' used by rule '{rule}' is not defined under sources"
RULES_DEFINED = "; defined: {names}"
RULES_NONE_DEFINED = "; none are defined yet"
RULES_DUPLICATE_RULE = "rule name '{name}' is used twice (first at line {line}); give each rule its own name"
RULES_DUPLICATE_SOURCE = "source name '{name}' is used twice (first at line {line}); give each source its own name"
RULES_UNKNOWN_VARIABLE = "unknown variable '{{{var}}}' in template '{name}' ({lang}); known: {known}"
RULES_TEMPLATE_BRACES = (
    "template '{name}' ({lang}) has a '{{' or '}}' without its partner; write {{{{ or }}}} for a literal brace"
)
RULES_TEMPLATE_TOO_LONG = (
    "template '{name}' ({lang}) can reach {length} characters on {platform}, over its limit of {limit}; shorten it"
)
RULES_TEMPLATE_NO_DEFAULT = (
    "template '{name}' has no text in the default language '{lang}', which is used when the "
    "mention's language has none; add one"
)
RULES_TEMPLATE_LANGUAGE = "template '{name}' has text for '{lang}', which is not in brand.languages ({languages})"
RULES_TEMPLATE_URL = (
    "template '{name}' ({lang}) contains a link, but acknowledgement.allow_urls is false "
    "(on X a post with a link costs far more); remove the link or set allow_urls: true"
)
# `explain`: why a rule matched or not
EXPLAIN_NO_CONDITIONS = "no conditions: matches every mention"
EXPLAIN_IN = "{what} '{value}' in [{choices}]"
EXPLAIN_NOT_IN = "{what} '{value}' not in [{choices}]"
EXPLAIN_UNKNOWN_NOT_IN = "{what} not known, so not in [{choices}]"
EXPLAIN_KEYWORD_FOUND = "keyword '{keyword}' found"
EXPLAIN_KEYWORDS_NONE = "none of the keywords [{keywords}] found"
EXPLAIN_KEYWORD_MISSING = "keyword '{keyword}' not found"
EXPLAIN_KEYWORDS_ALL = "all keywords [{keywords}] found"
EXPLAIN_REGEX_MATCH = "regex '{pattern}' matched '{found}'"
EXPLAIN_REGEX_NO_MATCH = "regex '{pattern}' did not match"
EXPLAIN_AT_LEAST = "{what} {value} >= {limit}"
EXPLAIN_BELOW = "{what} {value} < {limit}"
EXPLAIN_AT_MOST = "{what} {value} <= {limit}"
EXPLAIN_ABOVE = "{what} {value} > {limit}"
EXPLAIN_SENTIMENT_UNKNOWN = "sentiment unknown (language '{lang}' cannot be scored)"
EXPLAIN_FLAG = "{what} is {value}"
EXPLAIN_FLAG_WANTED = "{what} is {value}, wanted {wanted}"
EXPLAIN_CATEGORY = "category '{category}' in [{choices}]"
EXPLAIN_NO_CATEGORY = "no category in [{choices}] (found: {found})"
EXPLAIN_ANY_NONE = "any: none of {count} matched ({details})"
EXPLAIN_NOT = "not ({inner})"
EXPLAIN_NOT_TRIED = "not tried: rule '{rule}' matched first"
EXPLAIN_NOT_TRIED_DROPPED = "not tried: rule '{rule}' dropped the mention"
# --- end rules messages ---

# --- core messages ---
# Thread notes, escalations and operator messages the core writes; CLI errors.
# Customer text is passed as {quote} and escaped by the notifier before formatting.
THREAD_FOLLOWUP = "Follow-up from {author}: {quote}"
THREAD_FOLLOWUP_ATTENTION = "Follow-up from {author}, still waiting for an answer: {quote}"
THREAD_REOPENED = "Case reopened: {author} wrote again after it was resolved: {quote}"
THREAD_PRIVATE_FOLLOWUP = "🔒 private message from {author} (for the team only, never quote it in public): {quote}"
THREAD_PRIVATE_REOPENED = ("Case reopened: 🔒 private message from {author} after it was resolved "
                           "(for the team only, never quote it in public): {quote}")
THREAD_SNOOZE_OVER = "Snooze is over; this case needs attention again."
THREAD_GROUP_MEMBER = "{mark} *#{case_id}* {platform} {author} ({severity}): {quote}"
# A note in a group's thread names its case: several customers share that thread.
THREAD_CASE_PREFIX = "Case #{case_id} ({author}): {text}"
THREAD_CLAIMED_CASE = "{user} claimed case #{case_id} ({author})."
THREAD_ACKNOWLEDGED_CASE = "{user} acknowledged case #{case_id} ({author})."
THREAD_SNOOZED_CASE = "{user} snoozed case #{case_id} ({author}) until {until}."
THREAD_RESOLVED_CASE = "{user} resolved case #{case_id} ({author})."
THREAD_WARNING = "{who} {left} left to answer this one ({percent}% of the response-time target used)."
THREAD_BREACH = "{who} the response-time target was missed: due {due}, nobody has answered yet."
ESCALATION_POST = "{who} escalation step {step}: case #{case_id} ({rule}) from {author} on {platform} is {late} overdue. {link}"
ESCALATION_LINK = "<{permalink}|Open the alert>"
THREAD_RESPONDED_ON_PLATFORM = "The brand answered on {platform} {ago}; first response recorded."
THREAD_ACK_POSTED = "Public acknowledgement posted ({lang}): “{text}”{dm}"
THREAD_ACK_DM = " DM hand-off: {link}"
THREAD_PRIVATE_POSTED = "Private message sent ({kind}): “{text}”"
THREAD_WOULD_POST = "Dry run, would post publicly ({lang}): “{text}”"
THREAD_WOULD_SEND_PRIVATE = "Dry run, would send privately: “{text}”"
THREAD_ACK_REFUSED = "The platform refused the public post: {reason}. Answer by hand if needed."
THREAD_PRIVATE_REFUSED = "The private message was not sent: {reason}."
THREAD_ACK_EXPIRED = (
    "The automatic acknowledgement was not posted: {reason}, and a public “sorry” after this case's response "
    "target ({due}) does more harm than good. Decide: answer by hand, or post it with Acknowledge: “{text}”"
)
THREAD_ACK_EXPIRED_HELD = "{platform}'s reply limit holds it until {until}"
THREAD_ACK_EXPIRED_LATE = "it could not go out in time"
THREAD_ACK_UNKNOWN = (
    "Not sure whether the public reply was posted (the bot stopped mid-post and {platform} could not "
    "be asked). Check the conversation {link} before answering, so the customer does not get it twice."
)
THREAD_ACK_APPROVAL = "Needs approval before anything is posted publicly ({reason})."
THREAD_ACK_COOLDOWN = "No automatic acknowledgement: {author} was already acknowledged {ago}."
THREAD_CLAIMED = "{user} claimed this case."
THREAD_ACKNOWLEDGED = "{user} acknowledged this case."
THREAD_SNOOZED = "{user} snoozed this case until {until}."
THREAD_RESOLVED = "{user} resolved this case."
THREAD_REPLY_QUEUED = "{user} is replying publicly: “{text}”"
THREAD_REPLY_DM_QUEUED = "🔒 {user} is replying in private (DM): “{text}”"
THREAD_MESSENGER_WINDOW = (
    "Messenger's 24-hour window for this conversation has closed, so the bot cannot answer it. "
    "Reply from the Page inbox with a message tag, or wait for the customer to write again."
)
SPIKE_ALERT = (
    ":chart_with_upwards_trend: Mention spike: {count} mentions in the last {window} "
    "(usually {mean:.1f} ± {sigma:.1f}). Something may be going on."
)
SPIKE_TOPICS = " Mostly about: {topics}."
SPIKE_TOPIC = "{category} ({count})"
SPIKE_EXAMPLE = "\n>{author}: {quote}"

CLI_ONCE_LEFT = "{count} Slack messages are still queued in the outbox; a running daemon delivers them at Slack's pace."

NOTE_UNKNOWN_KIND = "a thread note of kind {kind!r} that this version cannot word; it was not posted"
NOTE_BAD_PAYLOAD = "a thread note of kind {kind!r} lacks what it needs ({detail}); it was not posted"

REPLY_EXPIRED = "automatic acknowledgement expired unposted: the case's response target passed"
OPS_AUTH_FAILED = (
    ":warning: {source}: the platform rejected our token ({reason}). Trying again in {probe}, then less "
    "and less often; polling resumes by itself once the token works. To replace it, set {env} and restart "
    "(a restart tries at once), or run `mention-monitor doctor`."
)
OPS_OUTAGE = (
    ":warning: {source} has failed for {duration} ({reason}). Nothing is lost: mentions will be "
    "fetched when it recovers."
)
OPS_RECOVERED = ":white_check_mark: {source} is working again after {duration}."
OPS_ALERT_PLAIN = (":warning: Slack refused the alert of case {case_id} ({reason}); it was posted as a plain "
                   "message without buttons. Use /mentions to claim or resolve it.")
OPS_ALERT_LOST = (":rotating_light: Slack refused the alert of case {case_id} ({reason}), even as a plain message; "
                  "the case is not in Slack, but /mentions lists it.")
OPS_LINE_LOST = (":warning: {what} could not be posted to Slack after {attempts} attempts ({reason}); "
                 "nothing will retry it.")
OPS_LINE_LOST_CASE = "A thread line or update of case {case_id}"
OPS_LINE_LOST_CHANNEL = "A message to {channel}"
OPS_RULES_REFUSED = ":no_entry: rules.yaml edit refused, the previous rules stay in force:\n```{errors}```"
RULES_MORE_ERRORS = "\n…and {count} more errors: run `mention-monitor check-rules` to see them all."
OPS_RULES_RELOADED = "rules.yaml reloaded: {rules} rules, {sources} sources."
OPS_GAP = ":warning: {source}: more mentions arrived than X keeps (the latest 800); some may have been missed."

LOG_POLL = "poll %s: fetched %d, stored %d, duplicates %d, cases %d, attached %d, alerts %d"
LOG_RATE_LIMITED = "poll %s: rate limited until %s; other sources go on"
LOG_DATABASE_UNAVAILABLE = (
    "database unavailable: %s. Nothing fetched is lost: each poll is stored in one transaction with its "
    "cursor, so the same mentions are fetched again; retrying at every poll until it takes writes again"
)
LOG_DATABASE_BACK = "database available again after %s: storing and delivering as usual"
LOG_SOCKET_MODE_DOWN = ("Slack Socket Mode (buttons, /mentions, App Home) not connected: %s; alerts still go out, "
                        "trying again in %.0fs (failure %d)")
LOG_SOCKET_MODE_UP = "Slack Socket Mode connected"
LOG_SOCKET_MODE_UP_AFTER = "Slack Socket Mode connected after %d failed attempts"
HEALTH_SOCKET_MODE_DOWN = "not connected: {reason} (failure {failures}, next attempt {next})"
LOG_TRANSIENT = "poll %s: %s; retrying in %.0fs (failure %d)"
LOG_AUTH_FAILED = "poll %s: authentication failed, source paused: %s"
LOG_BAD_PAYLOAD = "poll %s: unreadable answer, nothing stored, cursor kept: %s"
LOG_DELIVERY_FAILED = "outbox %s #%d: %s; retry in %.0fs"
REPLY_LIMIT_HELD = "{platform} reply limit reached: waiting until {until} without asking again"
LOG_FB_WEBHOOK_BAD_VERIFY = ("Facebook webhook verification refused: hub.verify_token does not match "
                             "FACEBOOK_VERIFY_TOKEN (check the token in the app's Webhooks settings)")
LOG_FB_WEBHOOK_BAD_SIGNATURE = ("Facebook webhook event refused: X-Hub-Signature-256 does not match the body "
                                "(is FACEBOOK_APP_SECRET the app's secret?); polling will still read it")
LOG_FB_WEBHOOK_STORE_FAILED = "Facebook webhook event could not be stored; polling will read it again"
LOG_FB_WEBHOOK_LISTENING = "Facebook webhooks: listening on %s (feed and messages)"
LOG_FB_WEBHOOK_NO_SECRET = ("Facebook webhooks are on (MENTION_MONITOR_FACEBOOK_WEBHOOK_PORT) but "
                            "FACEBOOK_APP_SECRET or FACEBOOK_VERIFY_TOKEN is not set: not started")
LOG_RULES_REFUSED = "rules.yaml edit refused, previous rules stay in force:\n%s"

CLI_DB_NOT_WRITABLE = (
    "cannot write to the database {url} ({reason}). mention-monitor stores each mention before it acts "
    "on it, so it does not start on a database it cannot write to: make the file and its folder writable "
    "(SQLite also writes -wal and -shm files beside it), free disk space, or point DATABASE_URL (--db) at "
    "a writable database."
)
HOLIDAYS_CHILD_FAILED = ("the public holiday calendar (python-holidays, asked in a child process) failed with "
                         "status {status}: {error}; check that the `holidays` package is installed")
DB_UPGRADE_CHILD_FAILED = ("the schema upgrade (`python -m monitor.migrations`) failed with status {status}: {error}; "
                           "run `mention-monitor db upgrade` to see the whole error")
CLI_DB_NO_SCHEMA = "{url}: no schema yet (head is {head}): run `mention-monitor db upgrade`"
CLI_DB_CURRENT = "{url}: at {revision} (head, up to date)"
CLI_DB_BEHIND = "{url}: at {revision}, this release's head is {head}: run `mention-monitor db upgrade`"
CLI_DB_UPGRADED = "{url}: upgraded to {revision}"
CLI_DB_TOO_NEW = (
    "the database {url} is at schema revision {revision}, which this release does not know (its newest is "
    "{head}): a newer release of mention-monitor upgraded it. Run that release, or restore the backup taken "
    "before the upgrade."
)
SETTINGS_BAD = "environment variable {name}={value}: {problem} (see .env.example)"
CLI_RULES_OK = "{path}: OK ({rules} rules, {sources} sources, {templates} templates)"
CLI_NO_RULES_FILE = "{path}: no such file. Copy the default and edit it: cp {default} {path}"
CLI_SANDBOX_NO_SEED = ("No sample stream to play (examples/mentions.jsonl is not installed): the sandbox stays "
                       "empty. Give one with --seed FILE.jsonl.")
CLI_REPLAY_MISSING = "{path}: no such file to replay."
CLI_STOPPING = "Stopping: finishing the current step (Ctrl-C again to force)."
CLI_SANDBOX_STARTED = "Sandbox serving the X, Graph and Slack APIs at {url} (what was posted: {url}/_sandbox/slack/messages)"
CLI_SANDBOX_PAGE = ("Slack as your team sees it, with buttons, the Reply form and /mentions that work: "
                    "open {url}/slack in a browser")
CLI_SANDBOX_PAGE_FAILED = "The page's Slack app did not start ({reason}): the page shows the record, clicks go nowhere."
CLI_CLOCK_SPEED = ("The daemon's clock runs {speed:g} times faster than yours: a 30 min response-time target "
                   "passes in {minutes} on the wall clock.")
CLI_CLOCK_SPEED_BAD = "--clock-speed {speed:g}: give a number above 0 (60 makes one minute last one second)."
# --- end core messages ---

# --- doctor messages ---
DOCTOR_OK = "OK    {check}: {detail}"
DOCTOR_WARN = "WARN  {check}: {detail}"
DOCTOR_FAIL = "FAIL  {check}: {problem}\n      fix: {fix}"
DOCTOR_SUMMARY_OK = "All {count} checks passed."
DOCTOR_SUMMARY_FAIL = "{failed} of {count} checks failed; fix them and run `mention-monitor doctor` again."
DOCTOR_SANDBOX = "using the sandbox at {url} (no real tokens are checked)"
DOCTOR_RULES_OK = "{path}: {rules} rules, {sources} sources"
DOCTOR_RULES_MISSING = "{path} does not exist"
DOCTOR_RULES_MISSING_FIX = "copy rules.yaml from the project, or pass --rules / set MENTION_MONITOR_RULES"
DOCTOR_RULES_BAD = "{path} has errors:\n{errors}"
DOCTOR_RULES_BAD_FIX = "correct each line:column above (`mention-monitor check-rules` checks the file alone)"
DOCTOR_DB_OK = "{url}: connected, schema revision {version}"
DOCTOR_DB_FAIL = "cannot connect to {url} ({reason})"
DOCTOR_DB_FAIL_FIX = "check DATABASE_URL (host, port, user, password) and that the database server is running"
DOCTOR_DB_NO_SCHEMA = ("{url}: connected; the tables do not exist yet, as expected on a fresh install: "
                       "`mention-monitor run` creates them when it starts")
DOCTOR_DB_VERSION = "{url}: schema revision {found}, this release uses {wanted}"
DOCTOR_DB_VERSION_FIX = ("run `mention-monitor db upgrade` (or start the daemon, which upgrades), or the release "
                         "that matches the database if it is newer")
DOCTOR_SLACK_OK = "the bot token works: {user} in {team}"
DOCTOR_SLACK_MISSING = "SLACK_BOT_TOKEN is not set: alerts would only be printed on the console"
DOCTOR_SLACK_MISSING_FIX = "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-...)"
DOCTOR_SOCKET_OK = "the app-level token opens a Socket Mode connection (buttons, /mentions, App Home)"
DOCTOR_SOCKET_MISSING = ("SLACK_APP_TOKEN is not set: alerts are posted, but their buttons, /mentions and "
                         "App Home do not answer")
DOCTOR_SOCKET_FIX = "set SLACK_APP_TOKEN to an app-level token (xapp-...) with the connections:write scope"
DOCTOR_CHANNELS_OK = "the bot is in {channels}"
DOCTOR_CHANNEL_UNKNOWN = "{channel} (rules.yaml `channels.{alias}`) is not a channel the bot can see"
DOCTOR_CHANNEL_NOT_MEMBER = "the bot is not in {channel} (rules.yaml `channels.{alias}`)"
DOCTOR_CHANNELS_FIX = "check each name in rules.yaml and invite the bot there: /invite @mention-monitor"
DOCTOR_TOKEN_FAIL = "{reason}"
DOCTOR_TOKEN_FAIL_FIX = "set a fresh token in {env} (and check the app's scopes), then run doctor again"
DOCTOR_NETWORK_FAIL_FIX = "the platform could not be reached; check the network or proxy and try again"
DOCTOR_X_OK = "the X keys post as @{username}"
DOCTOR_X_READ_ONLY = "only X_BEARER_TOKEN is set: mentions can be read, but no reply can be posted"
DOCTOR_X_MISSING = "X_BEARER_TOKEN is not set, but rules.yaml has X sources"
DOCTOR_FACEBOOK_OK = "the Page token works for the Page {name}"
DOCTOR_FACEBOOK_MISSING = "FACEBOOK_PAGE_TOKEN is not set, but rules.yaml has Facebook sources"
DOCTOR_UNUSED = "no {platform} source in rules.yaml: not checked"
# --- end doctor messages ---

# --- connector and report messages ---
# connectors/x.py
X_GAP = ("X: %d mentions arrived since the last poll; X keeps only the latest %d, "
           "so older ones may have been missed")
X_SEARCH_GAP = ("X: the last search result read is older than the 7 days recent search covers; "
                  "searching from %s on, posts in between may have been missed")
X_RATE_LIMITED = "X rate limit reached for {what}; the window resets at {until:%H:%M:%S} UTC"
X_AUTH = "X rejected our credentials for {what} ({status}): {detail}"
X_TRANSIENT = "X could not answer {what}: {detail}"
X_BAD_PAYLOAD = "X answered {what} with something unreadable: {detail}"
X_NO_USER_AUTH = ("posting on X needs user-context credentials (X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN, "
                    "X_ACCESS_TOKEN_SECRET); only a bearer token is set")
X_KEYWORD_HIT = ("X forbids automated replies to posts that do not @mention @{handle} (keyword hits); "
                   "answer by hand if needed")
X_TOO_LONG = "the reply has {length} characters; X allows {limit}"
X_DM_NOT_INVITED = ("X direct messages go only to people who wrote to @{handle} first; "
                      "use the DM hand-off link in a public reply instead")
X_REFUSED = "X refused the post: {detail}"
# connectors/facebook.py
FACEBOOK_RATE_LIMITED = "Facebook rate limit reached for {what} ({detail}); try again after {until:%H:%M:%S} UTC"
FACEBOOK_AUTH = "Facebook rejected the Page token for {what}: {detail}"
FACEBOOK_TRANSIENT = "Facebook could not answer {what}: {detail}"
FACEBOOK_BAD_PAYLOAD = "Facebook answered {what} with something unreadable: {detail}"
FACEBOOK_REFUSED = "Facebook refused {what}: {detail}"
FACEBOOK_MESSENGER_WINDOW = ("Messenger allows a Page to answer only within 24 hours of the person's last message; "
                        "that window has closed ({detail})")
FACEBOOK_PRIVATE_REPLY = ("a private reply can be sent once per comment and only within 7 days of it ({detail})")
FACEBOOK_NOT_PUBLIC = "a Messenger message has no public reply; send a private message instead"
# monitor/cli/report.py
REPORT_RULES_MISSING = "{path}: no rules file; reporting in UTC without brand names (use --rules FILE)"
REPORT_PNG_WRITTEN = "charts written: {paths}"
REPORT_NO_SOURCES = ("no X or Facebook source to backfill: rules.yaml lists none, or their tokens are not set "
                  "(X_BEARER_TOKEN, FACEBOOK_PAGE_TOKEN)")
REPORT_SEARCH_CLAMPED = "{source}: X recent search reaches back {days} days only; fetching from {since:%Y-%m-%d %H:%M} UTC"
REPORT_RATE_LIMITED = ("{source}: rate limited until {until:%H:%M} UTC; run backfill again after that "
                    "(what was stored stays stored, nothing is fetched twice)")
REPORT_FAILED = "{source}: {error}; run backfill again later (what was stored stays stored)"
REPORT_DONE = "{source}: {fetched} fetched, {stored} new, {duplicates} already stored, {older} older than --since"
# monitor/report/digest.py
DIGEST_TITLE_WEEKLY = "Mentions digest, week of {start:%d %b} - {end:%d %b %Y}"
DIGEST_TITLE_DAILY = "Mentions digest, {start:%A %d %b %Y}"
DIGEST_NOT_CONFIGURED = "rules.yaml has no `digest:` section any more, so the queued digest was not posted"
DIGEST_RENDER_FAILED = ("the digest's charts could not be drawn (the drawing process exited with {code}); "
                        "it is tried again a few times, later each time. Its last output:\n{stderr}")
# --- end connector and report messages ---

# --- rules as code messages (explain, backtest, silences) ---
# monitor/cli/__init__.py: explain
CLI_EXPLAIN_UNKNOWN_SOURCE = "explain: rules.yaml has no source '{name}'.{hint}"
CLI_EXPLAIN_SOURCES = " Sources: {names}."
CLI_EXPLAIN_NO_SOURCES = " It defines no sources."
CLI_EXPLAIN_NO_MENTION = "explain: no stored mention #{id} in {db}."
CLI_EXPLAIN_NO_DB = "explain: cannot read {db} ({reason}). Pass --db, or set DATABASE_URL."
CLI_EXPLAIN_STORED = "mention #{id} · {platform} {kind} by {author} · source {source} · {created}"
CLI_EXPLAIN_STORED_RULE = "stored rule {rule} (triage as stored when it arrived)"
CLI_DID_YOU_MEAN = " Did you mean '{suggestion}'?"
# monitor/cli/backtest.py
BACKTEST_TITLE = "Backtest of {proposed} against {current}: {count} stored mentions, {since} to {until} UTC"
BACKTEST_NO_CHANGE = "No difference: over these mentions the edit raises, groups and answers exactly the same."
BACKTEST_ROW_ALERTS = "Slack alerts (new cases)"
BACKTEST_ROW_GROUPED = "  of them in grouped messages"
BACKTEST_ROW_REPLIES = "Automatic public replies"
BACKTEST_ROW_DROPPED = "Dropped"
BACKTEST_ROW_MUTED = "Muted by silences"
BACKTEST_MUTED_GAINED = "Alerts a silence would mute ({count})"
BACKTEST_MUTED_LOST = "Alerts no longer muted ({count})"
BACKTEST_COL_SILENCE = "silence"
BACKTEST_COL_CURRENT = "current"
BACKTEST_COL_PROPOSED = "proposed"
BACKTEST_ALERTS_GAINED = "Alerts gained ({count})"
BACKTEST_ALERTS_LOST = "Alerts lost ({count})"
BACKTEST_REPLIES_GAINED = "Automatic public replies gained ({count})"
BACKTEST_REPLIES_LOST = "Automatic public replies lost ({count})"
BACKTEST_GROUPED_GAINED = "Alerts newly folded into grouped messages ({count})"
BACKTEST_GROUPED_LOST = "Alerts no longer grouped: each gets its own message ({count})"
BACKTEST_SLA_CHANGES = "Response-time targets that change ({count})"
BACKTEST_COL_RULE = "rule"
BACKTEST_COL_CHANNEL = "channel"
BACKTEST_COL_COUNT = "mentions"
BACKTEST_COL_EXAMPLES = "for example"
BACKTEST_COL_FROM = "from"
BACKTEST_COL_TO = "to"
BACKTEST_SLA = "{rule}: {sla}{business}"
BACKTEST_SLA_BUSINESS = " (business hours)"
BACKTEST_EXAMPLE = "#{id} {author}: {text}"
BACKTEST_BAD_SINCE = "backtest: --since {value!r} is neither a duration (30d, 12h) nor a date (2026-11-01)."
BACKTEST_BAD_UNTIL = "backtest: --until {value!r} is not a date or time (2026-11-24 or 2026-11-24T09:00Z)."
BACKTEST_NO_DB = "backtest: cannot read the mentions in {db} ({reason}). Pass --db, or set DATABASE_URL."
BACKTEST_RULES_BAD = "backtest: {path} has errors, nothing was replayed:"
EVAL_RULES_BAD = "eval: {path} has errors, nothing was evaluated:"
# monitor/rules/silences.py: silences in rules.yaml
RULES_SILENCE_EMPTY_MATCH = "silence match needs at least one of: author, keyword, rule"
RULES_SILENCE_NO_END = "a silence needs an end: `until: 2026-12-24T18:00:00Z`, or `from:` with `for: 4h`"
RULES_SILENCE_BOTH_ENDS = "write either `until:` or `for:`, not both"
RULES_SILENCE_FOR_NEEDS_FROM = ("`for:` needs `from:` (when the silence starts) in rules.yaml; write "
                                "`until: 2026-12-24T18:00:00Z`, or mute from Slack: `/mentions mute author @name 4h`")
RULES_SILENCE_TIME = "'{value}' is not a date and time; write it like 2026-12-24T18:00:00Z"
RULES_SILENCE_ZONE = "'{value}' has no time zone; write it like 2026-12-24T18:00:00Z or 2026-12-24T19:00:00+01:00"
RULES_SILENCE_ORDER = "the silence ends ({until}) before it starts ({start})"
RULES_UNDEFINED_SILENCE_RULE = "silences[{index}] mutes rule '{name}', which is not defined"
# monitor/cases/silences.py and Slack: mutes
SILENCE_AUTHOR = "author {value}"
SILENCE_KEYWORD = "keyword '{value}'"
SILENCE_RULE = "rule {value}"
SILENCE_VIP = " (VIP and critical too)"
SILENCE_FROM_RULES = "rules.yaml"
SLACK_BUTTON_MUTE = "Mute 4 h"
SLACK_MUTE_OPTIONS = (("author", "Mute this author for 4 h"), ("rule", "Mute this rule for 4 h"))
SLACK_MUTED = ("Muted {what} until {until}: matching mentions are still stored and counted, but raise no alert; "
               "VIP and critical alerts still come through. `/mentions unmute {id}` lifts it.")
SLACK_MUTE_HELP = ("Usage: `/mentions mute author @name 4h`, `/mentions mute keyword \"free lamp\" 2h`, "
                   "`/mentions mute rule possible-complaint 30m` (add a comment after the duration); "
                   "`/mentions mutes` lists them, `/mentions unmute 3` lifts one.")
SLACK_MUTE_BAD_DURATION = "'{value}' is not a duration: write 30m, 4h or 1d."
SLACK_MUTE_UNKNOWN_RULE = "rules.yaml has no rule '{name}'.{hint}"
SLACK_MUTE_TOO_LONG = "A mute from Slack lasts at most {limit}; for longer, add it to rules.yaml `silences:`."
SLACK_UNMUTED = "Lifted mute #{id} ({what})."
SLACK_UNMUTE_UNKNOWN = "No active mute #{id}. `/mentions mutes` lists them."
SLACK_MUTES_NONE = "Nothing is muted."
SLACK_MUTES_HEADER = ("*{count} silence in force*", "*{count} silences in force*")
SLACK_MUTE_LINE = "#{id} · {what} · until {until} · by {who}{comment}"
SLACK_MUTE_LINE_RULES = "{what} · until {until} · rules.yaml{comment}"
SLACK_HOME_MUTES = "Muted"
SLACK_STATS_MOVED_TO_DM = "Moved to DM"
SLACK_STATS_MOVED_TO_DM_VALUE = "{moved} of {handed_off} hand-offs"
SLACK_STATS_MUTED = "Muted (stored, no alert)"
