"""What the conformance kit finds: one :class:`Finding` per check (ok, violation, refusal, skip, note),
gathered in a :class:`ConformanceReport`, and :func:`attempt`, the one shape every check has (call the
plugin, classify what it raised).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edgecraft.errors import PluginError
from edgecraft.safe_text import clean_text

Outcome = Literal["ok", "violation", "refused", "skipped", "note"]

#: Every kind of plugin the kit checks: one per registration hook a third party may implement, plus a plugin's
#: lifecycle hooks ("integration") and commands; "plugin" is an entry point that did not load.
Kind = Literal["strategy", "backend", "model source", "dataset kind", "metric", "contract kind", "device",
               "integration", "commands", "plugin"]
KINDS: tuple[Kind, ...] = typing.get_args(Kind)


@dataclass(frozen=True)
class Finding:
    outcome: Outcome
    #: The method or aspect checked, e.g. ``apply()`` or ``params_model``.
    method: str
    message: str

    def line(self, plugin: str) -> str:
        tag = {"ok": "ok", "violation": "FAIL", "refused": "refused", "skipped": "skip", "note": "note"}[self.outcome]
        return f"{tag:7} {plugin}: {self.method}: {self.message}"


@dataclass
class ConformanceReport:
    """What :func:`check_plugin` found; ``ok`` when there is no violation."""

    kind: Kind
    name: str
    distribution: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "violation"]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def add(self, outcome: Outcome, method: str, message: str) -> None:
        self.findings.append(Finding(outcome, method, one_line(message)))

    def lines(self, *, verbose: bool = True) -> list[str]:
        shown = self.findings if verbose else self.violations
        return [f.line(self.label) for f in shown]

    def summary(self) -> str:
        checks = sum(1 for f in self.findings if f.outcome == "ok")
        if self.ok and not checks:
            return (f"{self.label} from {self.distribution} was not checked: every check was skipped or refused "
                    "(--all says why; --params gives params a kind needs)")
        if self.ok:
            return f"{self.label} from {self.distribution} conforms ({checks} checks passed)"
        return (f"{self.label} from {self.distribution} does not conform: {len(self.violations)} violation(s), "
                f"{checks} checks passed")


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conforms`; its message lists every violation, one per line."""


def plugin_message(exc: PluginError, hook: str) -> str:
    """A PluginError's message without the long "steps[0] (x): strategy 'x' from dist on target 't':" prefix
    (the finding's line names the plugin, method and target already)."""
    cut = exc.message.find(f": {hook}")
    return exc.message[cut + 2:] if cut >= 0 else exc.message


def one_line(text: object) -> str:
    return clean_text(str(text), keep_newlines=False).replace("\n", " ")[:600]


#: One rung of an error ladder: an exception type, the finding it becomes, and its message.
Rung = tuple[type[BaseException], Outcome, Callable[[Any], str]]


def raised(exc: BaseException) -> str:
    return f"raised {type(exc).__name__}: {exc}"


#: Any exception from the plugin is a violation, reported as what it raised.
RAISED: tuple[Rung, ...] = ((Exception, "violation", raised),)


def attempt(report: ConformanceReport, method: str, where: str, call: Callable[[], Any],
             ladder: tuple[Rung, ...] = RAISED) -> tuple[bool, Any]:
    """Run one plugin call; an exception becomes the finding of the first rung it matches.

    Every check of the kit has the same shape (call the plugin, classify what it raised as a violation,
    a refusal or a skip, stop that check); the ladder is the only part that differs. Returns
    ``(True, value)`` or ``(False, None)`` after recording the finding; unmatched exceptions propagate.
    """
    try:
        return True, call()
    except Exception as exc:
        for kind, outcome, message in ladder:
            if isinstance(exc, kind):
                report.add(outcome, method, f"{where}: {message(exc)}")
                return False, None
        raise
