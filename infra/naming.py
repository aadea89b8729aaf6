"""Physical names under the stack's `pulumi:autonaming` pattern, checked against AWS's length limits up front.

Without a pattern the provider shortens a long logical name to fit. With one it takes the engine's name as it is and
refuses one over the limit only in its check of that resource (pulumi-terraform-bridge, `ComputeAutoNameDefault`:
"calculated name ... exceeds maximum length"), which `pulumi up --skip-preview` (the deploy workflow's Automation
API run) reaches after other resources were created. So the program measures the names first (docs/first-deploy.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from app import definition
from app.definition import Function, Route
from app.settings import StackSettings

ROLE = "aws:iam/role:Role"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"

NAME_LIMITS: dict[str, tuple[int, str, str]] = {
    ROLE: (64, "IAM role names", r"[\w+=,.@-]"),
    FUNCTION: (64, "Lambda function names", r"[A-Za-z0-9_-]"),
    PERMISSION: (100, "Lambda permission statement ids", r"[A-Za-z0-9_-]"),
}
"""AWS's length limits and characters (IAM CreateRole RoleName, Lambda CreateFunction FunctionName, AddPermission
StatementId) for the auto-named resources a stack name can break; every other name here allows 128 characters or
more, and the characters of a stack name (Pulumi allows letters, digits, `-`, `_` and `.`)."""

LOGGING_ROLE = "api-gateway-logging-role"
"""`infra.account.AccountLoggingRole`'s role, declared by the stack that manages the region's logging role."""

SSM_PARAMETER = "aws:ssm/parameter:Parameter"
SSM_RESERVED_PREFIXES = ("aws", "ssm")
"""SSM refuses a parameter name starting with these, in any case (PutParameter's naming constraints)."""

RANDOM = re.compile(r"(?:hex|alphanum|string|num)\((\d+)\)")
EXPRESSION = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class NamingContext:
    """What a pattern's expressions stand for in this run."""

    stack: str
    project: str
    organization: str | None
    """None where the backend has no organization: a pattern naming it is then not measured."""


def planned_names(
    functions: Sequence[Function], routes: Sequence[Route], authorizer: Function | None, declares_logging_role: bool
) -> list[tuple[str, str]]:
    """(type, logical name) of every limited resource the program registers, named as its component names it."""
    names: list[tuple[str, str]] = []
    for function in [*functions, *([authorizer] if authorizer is not None else [])]:
        names += [(FUNCTION, f"{function.name}-function"), (ROLE, f"{function.name}-role")]
    names += [(PERMISSION, f"{route.logical_name}-permission") for route in routes]
    if authorizer is not None:
        names.append((PERMISSION, f"{authorizer.name}-permission"))
    if declares_logging_role:
        names.append((ROLE, LOGGING_ROLE))
    return names


def pattern_for(autonaming: Mapping[str, Any], type_token: str) -> str | None:
    """The pattern the engine applies to a resource type (resource, then provider, then root); None for none."""
    provider: Mapping[str, Any] = (autonaming.get("providers") or {}).get(type_token.split(":", 1)[0]) or {}
    for level in ((provider.get("resources") or {}).get(type_token) or {}, provider, autonaming):
        if level.get("pattern"):
            return str(level["pattern"])
        if level.get("mode") == "verbatim":
            return "${name}"
        if level.get("mode"):
            return None
    return None


def name_length(pattern: str, name: str, context: NamingContext) -> int | None:
    """The length of the names `pattern` gives resource `name`; None when an expression's length is unknown."""
    sizes = {"name": len(name), "stack": len(context.stack), "project": len(context.project), "uuid": 36}
    if context.organization is not None:
        sizes["organization"] = len(context.organization)
    length = len(EXPRESSION.sub("", pattern))
    for expression in EXPRESSION.findall(pattern):
        random = RANDOM.fullmatch(expression.strip())
        size = int(random[1]) if random else sizes.get(expression.strip())
        if size is None:
            return None
        length += size
    return length


def check_name_lengths(
    autonaming: Mapping[str, Any] | None, context: NamingContext, names: Iterable[tuple[str, str]]
) -> None:
    """Raise `pulumi.RunError` naming the limit when the pattern makes any planned name too long for AWS, or puts a
    character of the stack or project name in a name that refuses it (a `.` in a Lambda function name)."""
    for type_token, name in names:
        pattern = pattern_for(autonaming or {}, type_token)
        if pattern is None:
            continue
        limit, what, allowed = NAME_LIMITS[type_token]
        for expression, value in (("${stack}", context.stack), ("${project}", context.project)):
            refused = sorted(set(re.sub(allowed, "", value)))
            if expression in pattern and refused:
                raise pulumi.RunError(
                    f"pulumi:autonaming pattern {pattern} puts {value!r} in {what}, which refuse "
                    f"{' '.join(repr(char) for char in refused)}: use a name without it, or a pattern without "
                    f"{expression} for {type_token}"
                )
        length = name_length(pattern, name, context)
        if length is None or length <= limit:
            continue
        fix = "use a shorter pattern"
        if stacks := pattern.count("${stack}"):
            longest = len(context.stack) - math.ceil((length - limit) / stacks)
            fix = f"use a stack name of at most {longest} characters, or a shorter pattern"
        raise pulumi.RunError(
            f"pulumi:autonaming pattern {pattern} names {name} {length} characters long in stack {context.stack!r}, "
            f"over AWS's limit of {limit} for {what}: {fix}"
        )


def check_stack_names(settings: StackSettings, declares_logging_role: bool) -> None:
    """Check every limited name this stack registers under its `pulumi:autonaming`, before any resource."""
    authorizer = definition.AUTHORIZER if settings.auth == "jwt" else None
    autonaming = pulumi.Config("pulumi").get_object("autonaming")
    context = NamingContext(pulumi.get_stack(), pulumi.get_project(), pulumi.get_organization())
    check_name_lengths(
        autonaming, context, planned_names(definition.FUNCTIONS, definition.ROUTES, authorizer, declares_logging_role)
    )
    if settings.auth == "jwt" and settings.jwt_mode == "secret":
        pattern = pattern_for(autonaming or {}, SSM_PARAMETER)
        if pattern is not None:
            values = {
                "stack": context.stack,
                "project": context.project,
                "name": f"{definition.AUTHORIZER.name}-secret",
            }
            name = EXPRESSION.sub(lambda expression: values.get(expression[1].strip(), "x"), pattern)
            check_ssm_name(name, f"pulumi:autonaming pattern {pattern} names the JWT secret's parameter")


def check_ssm_name(name: str, what: str) -> None:
    """Raise `pulumi.RunError` when SSM would refuse `name` for its reserved prefix, saying what chose the name."""
    if name.lower().startswith(SSM_RESERVED_PREFIXES):
        raise pulumi.RunError(
            f"{what} {name!r}, which SSM refuses (no parameter name may start with 'aws' or 'ssm', in any case): "
            "use a stack name that does not start with them"
        )
