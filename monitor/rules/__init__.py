"""rules.yaml: the public face of the rules package (load, check, match, explain)."""

from monitor.rules.load import (
    TEMPLATE_VARIABLES,
    AckAction,
    AlertAction,
    Condition,
    Decision,
    MentionFacts,
    Rule,
    RulesError,
    Ruleset,
    RuleTrace,
    Source,
    evaluate,
    explain,
    format_duration,
    load_rules,
    normalize_text,
    parse_duration,
    parse_rules,
    render_template,
    x_weighted_length,
)

__all__ = [
    "TEMPLATE_VARIABLES", "AckAction", "AlertAction", "Condition", "Decision", "MentionFacts", "Rule",
    "RuleTrace", "Ruleset", "RulesError", "Source", "evaluate", "explain", "format_duration", "load_rules",
    "normalize_text", "parse_duration", "parse_rules", "render_template", "x_weighted_length",
]
