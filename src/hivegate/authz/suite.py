"""Run policy test cases (`cases`) against the gateway's own decision path, and report them (text rows, JUnit XML).

Each case is decided by `gate.decide_call`, exactly as the gateway decides a call (the same entity builder, the same
engine, `requiredScopes` too). A case passes when the decision is the one expected and, if the case names `reason`s,
each of them (a policy id or its `@id` annotation) is among the policies that decided it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from hivegate.authz.cases import Case, CaseFile
from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.decision import Decision
from hivegate.authz.explain import describe
from hivegate.authz.gate import decide_call
from hivegate.core.principal import Principal

__all__ = ["CaseResult", "junit_xml", "run_case"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case's decision and, when it failed, why (`problem`)."""

    file: CaseFile
    case: Case
    decision: Decision
    problem: str | None

    @property
    def passed(self) -> bool:
        return self.problem is None

    @property
    def got(self) -> str:
        return "allow" if self.decision.allowed else "deny"

    @property
    def explanation(self) -> str:
        return describe(self.decision, self.case.action)


def run_case(authorizer: CedarAuthorizer, file: CaseFile, case: Case) -> CaseResult:
    """Decide `case` as the gateway would, and compare it with what the case expects."""
    issuer = case.claims.get("iss")
    principal = Principal(str(case.claims["sub"]), issuer if isinstance(issuer, str) else "", "jwt", case.claims)
    decision, _ = decide_call(
        authorizer,
        principal,
        case.action,
        case.resource,
        arguments=case.arguments,
        annotations=case.annotations,
        origin=case.origin(file.server),
    )
    expected = "allow" if case.expect_allow else "deny"
    problem = None
    if decision.allowed != case.expect_allow:
        problem = f"expected {expected}, got {'allow' if decision.allowed else 'deny'}"
    else:
        deciding = {*decision.reasons, *decision.names}
        missing = [r for r in case.reasons if r not in deciding]
        if missing:
            by = ", ".join(decision.named) or "no policy"
            problem = f"expected {expected} by {', '.join(missing)}, decided by {by}"
    return CaseResult(file, case, decision, problem)


def junit_xml(results: Sequence[CaseResult]) -> str:
    """JUnit XML: one `testsuite` per case file, one `testcase` per case, a `failure` for each that failed."""
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(sum(not r.passed for r in results)))
    suites: dict[str, ET.Element] = {}
    for result in results:
        name = str(result.file.path)
        suite = suites.get(name)
        if suite is None:
            suite = suites[name] = ET.SubElement(root, "testsuite", name=name, tests="0", failures="0")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        case = ET.SubElement(suite, "testcase", classname=name, name=result.case.label)
        if result.problem is not None:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            failure = ET.SubElement(case, "failure", message=result.problem, type="AuthorizationMismatch")
            failure.text = f"{result.problem}\n{result.explanation}\n" + "".join(
                f"error: {e}\n" for e in result.decision.errors
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
