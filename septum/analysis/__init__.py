"""Analysis: the flow graph of a model, the rule registry, and the engine that runs the rules."""

from .engine import Report, check
from .finding import ElementRef, Finding, PathStep, Severity
from .registry import RULES, Rule, all_rules, get_rule

__all__ = ["RULES", "ElementRef", "Finding", "PathStep", "Report", "Rule", "Severity", "all_rules", "check", "get_rule"]
