"""Reading the GitHub Actions workflows and what they refer to (stacks, make targets, actions), for the tests.

GitHub reads workflow files as YAML 1.2, where `on` is a plain key; PyYAML's YAML 1.1 rules would turn it into
the boolean True, so the loader here only treats true/false as booleans.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions"


class WorkflowLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (`on`, `yes`, `off` stay strings)."""


WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
WorkflowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def workflow_files() -> list[Path]:
    """Every workflow file, sorted."""
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    """One workflow as GitHub reads it."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=WorkflowLoader)
    assert isinstance(loaded, dict), f"{path.name} is not a YAML mapping"
    return loaded


@dataclass(frozen=True)
class Step:
    """A step with where it is, for messages."""

    workflow: str
    job_id: str
    job: dict[str, Any]
    step: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.workflow} job {self.job_id} step {self.step.get('name') or self.step.get('uses') or '?'}"

    @property
    def action(self) -> str:
        """The action without its version (`pulumi/actions`), or "" for a `run` step."""
        return str(self.step.get("uses", "")).split("@", 1)[0]

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(self.step.get("with") or {})


def steps(workflows: dict[str, dict[str, Any]]) -> Iterator[Step]:
    """Every step of every job of the given workflows (by file name)."""
    for name, workflow in workflows.items():
        for job_id, job in (workflow.get("jobs") or {}).items():
            for step in job.get("steps") or ():
                yield Step(name, job_id, job, step)


def all_workflows() -> dict[str, dict[str, Any]]:
    """Every workflow, by file name."""
    return {path.name: load(path) for path in workflow_files()}


EXPRESSION = re.compile(r"^\$\{\{\s*(?P<expression>[^}]+?)\s*\}\}$")


def stacks_of(step: Step, workflows: dict[str, dict[str, Any]]) -> list[str]:
    """The stacks a Pulumi step runs on: its literal `stack-name`, or the values of the matrix entry or the
    `workflow_call` input it names. Anything else raises, so a new indirection cannot hide a stack from the tests."""
    value = str(step.inputs.get("stack-name", ""))
    match = EXPRESSION.match(value)
    if not match:
        return [value.rsplit("/", 1)[-1]]
    expression = match["expression"]
    if expression.startswith("matrix."):
        matrix = (step.job.get("strategy") or {}).get("matrix") or {}
        return [str(item) for item in matrix.get(expression.removeprefix("matrix."), ())]
    if expression.startswith("inputs."):
        key = expression.removeprefix("inputs.")
        target = f"./.github/workflows/{step.workflow}"
        return [
            str(job["with"][key])
            for workflow in workflows.values()
            for job in (workflow.get("jobs") or {}).values()
            if job.get("uses") == target and key in (job.get("with") or {})
        ]
    raise AssertionError(f"{step.where}: cannot tell which stack {value!r} names")


def make_targets_called(script: str) -> list[str]:
    """The targets of every `make` command in a `run` script (`make smoke URL=...` -> smoke)."""
    targets = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        for index, word in enumerate(words):
            if word != "make":
                continue
            for argument in words[index + 1 :]:
                if argument in ("&&", "||", ";", "|"):
                    break
                if not argument.startswith("-") and "=" not in argument:
                    targets.append(argument)
    return targets


def makefile_targets() -> set[str]:
    """The targets the Makefile defines (rules, not variable assignments)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.MULTILINE))


def stack_configs() -> set[str]:
    """The stacks that have a `Pulumi.<stack>.yaml`."""
    return {path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in ROOT.glob("Pulumi.*.yaml")}
