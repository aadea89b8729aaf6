"""The stage's Deployment is replaced when routes or integrations change, and only then."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from app import definition
from app.definition import Route
from infra import archive, routes
from tests.infra.mocks import ProgramRun, run_program

DEPLOYMENT = "aws:apigatewayv2/deployment:Deployment"


def trigger(run: ProgramRun) -> str:
    value: str = run.one(DEPLOYMENT, "websocket-deployment").inputs["triggers"]["redeployment"]
    return value


def code_hashes(run: ProgramRun) -> dict[str, str]:
    return {
        function.name: function.inputs["sourceCodeHash"] for function in run.of_type("aws:lambda/function:Function")
    }


def comparable(value: Any) -> Any:
    """Inputs as the engine diffs them: an archive by its path (its hash is the function's sourceCodeHash)."""
    if isinstance(value, pulumi.FileArchive):
        return ("FileArchive", value.path)
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def test_the_trigger_is_stable_across_runs(dev_run: ProgramRun) -> None:
    assert trigger(run_program("dev")) == trigger(dev_run), "an unchanged program gives another deployment trigger"


def test_an_unchanged_program_has_nothing_to_change(dev_run: ProgramRun) -> None:
    """What `pulumi preview` compares: every resource's inputs, here from a preview run against the first run's."""
    again = run_program("dev", preview=True)
    assert sorted(resource.urn for resource in again) == sorted(resource.urn for resource in dev_run), (
        "the two runs registered different resources"
    )
    for resource in dev_run:
        assert comparable(again.by_urn(resource.urn).inputs) == comparable(resource.inputs), (
            f"{resource}: inputs differ between two runs of unchanged code and config"
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {"lambdaMemoryMb": 1024},
        {"lambdaRuntime": "python3.12", "lambdaArchitecture": "x86_64", "lambdaTimeoutSeconds": 10},
        {"logRetentionDays": 30},
        {"throttlingBurstLimit": 10, "throttlingRateLimit": 5},
        {"executionLoggingLevel": "INFO"},
        {"maxMessageBytes": 1000},
        {
            "pointInTimeRecovery": True,
            "tableBillingMode": "PROVISIONED",
            "tableReadCapacity": 1,
            "tableWriteCapacity": 1,
        },
    ],
    ids=["memory", "runtime", "retention", "throttling", "execution-logging", "message-size", "table"],
)
def test_settings_that_are_not_routing_leave_the_trigger_alone(overrides: dict[str, Any], dev_run: ProgramRun) -> None:
    assert trigger(run_program("dev", overrides)) == trigger(dev_run), f"{overrides} changed the deployment trigger"


def test_a_code_change_updates_its_function_only_and_not_the_deployment(
    dev_run: ProgramRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(archive.SOURCE_ROOT / "handlers", tmp_path / "handlers", ignore=ignore)
    handler = tmp_path / "handlers" / f"{definition.CONNECT.module}.py"
    handler.write_text(handler.read_text() + "\n# a change\n")
    monkeypatch.setattr(archive, "SOURCE_ROOT", tmp_path)

    changed = run_program("dev")

    assert trigger(changed) == trigger(dev_run), "a code change replaced the deployment"
    before, after = code_hashes(dev_run), code_hashes(changed)
    differing = sorted(name for name in before if before[name] != after[name])
    containing = sorted(
        f"{function.name}-function"
        for function in definition.FUNCTIONS
        if f"handlers/{definition.CONNECT.module}.py" in archive.archive_members(function)
    )
    assert differing == containing, f"functions updated: {differing}, expected only those zipping connect.py"


def replaced(key: str, new: Route) -> tuple[Route, ...]:
    return tuple(new if route.key == key else route for route in definition.ROUTES)


@pytest.mark.parametrize(
    "new_routes",
    [
        (*definition.ROUTES, Route("typing", definition.DEFAULT)),
        replaced("sendmessage", Route("send", definition.SEND_MESSAGE)),
        replaced("$default", Route("$default", definition.SEND_MESSAGE)),
        tuple(route for route in definition.ROUTES if route.key != "$default"),
    ],
    ids=["route-added", "route-key-changed", "route-served-by-another-function", "route-removed"],
)
def test_a_route_change_replaces_the_deployment(
    new_routes: tuple[Route, ...], dev_run: ProgramRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(definition, "ROUTES", new_routes)
    changed = run_program("dev")
    assert trigger(changed) != trigger(dev_run), "a route change left the deployment trigger unchanged"
    deployment = changed.one(DEPLOYMENT, "websocket-deployment")
    for route in changed.of_type("aws:apigatewayv2/route:Route"):
        assert route.urn in deployment.dependencies, f"{deployment}: does not depend on {route}"


def test_an_integration_change_replaces_the_deployment(dev_run: ProgramRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "INTEGRATION_TYPE", "AWS")
    assert trigger(run_program("dev")) != trigger(dev_run), "an integration change left the trigger unchanged"
