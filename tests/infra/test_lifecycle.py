"""The program run as a sequence of versions, as successive `pulumi up`s: what the stage serves after each.

Pulumi's mocks keep no state between runs, so the step between two versions is modelled here: every resource of the
new run exists afterwards and every other one has been deleted (Pulumi creates and updates first, deletes last).
What the stage serves then depends on how it is deployed:

- an explicit `Deployment` snapshots the routes when it is created; a replacement is created before the removed
  route is deleted (pulumi/pulumi-aws#3289), so it keeps serving that route, and a stable trigger never repairs it;
- an auto-deploying stage is redeployed by API Gateway after every change of the API, deletions included, so it
  serves the routes that exist once the update is done.

The test fails if the stage goes back to an explicit deployment, or if any step leaves a route served that the
program no longer declares, a route without its invoke permission, or the authorizer / domain in the wrong state.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from app import definition
from app.definition import Route
from infra import archive
from tests.infra.mocks import ProgramRun, RegisteredResource, run_program, shared_run

STAGE = "aws:apigatewayv2/stage:Stage"
DEPLOYMENT = "aws:apigatewayv2/deployment:Deployment"
ROUTE = "aws:apigatewayv2/route:Route"
PERMISSION = "aws:lambda/permission:Permission"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
MAPPING = "aws:apigatewayv2/apiMapping:ApiMapping"

AUTH_ON = {"auth": "jwt", "jwtSecret": "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="}
DOMAIN_ON = {
    "customDomainName": "chat.example.com",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0b9d3e5c-1a2b-4c3d-8e9f-001122334455",
}
TYPING = Route("typing", definition.DEFAULT)


@dataclass(frozen=True)
class Version:
    """One version of the program: its routes and config overrides."""

    label: str
    routes: tuple[Route, ...]
    overrides: dict[str, Any]


VERSIONS = (
    Version("first up", definition.ROUTES, {}),
    Version("route added", (*definition.ROUTES, TYPING), {}),
    Version("route removed", definition.ROUTES, {}),
    Version("auth on", definition.ROUTES, AUTH_ON),
    Version("auth off", definition.ROUTES, {}),
    Version("domain on", definition.ROUTES, DOMAIN_ON),
    Version("domain off", definition.ROUTES, {}),
)


@contextmanager
def routes_of(version: Version, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(definition, "ROUTES", version.routes)
        yield


def route_keys(run: ProgramRun) -> set[str]:
    return {route.inputs["routeKey"] for route in run.of_type(ROUTE)}


def served_after(previous: set[str], run: ProgramRun) -> set[str]:
    """The route keys the stage serves once the update to `run` has finished (see the module docstring)."""
    stage = run.one(STAGE)
    if stage.inputs.get("autoDeploy") is True:
        return route_keys(run)
    # An explicit deployment, replaced while the routes removed in this step still existed.
    return route_keys(run) | (previous - route_keys(run)) if run.of_type(DEPLOYMENT) else previous


def test_every_version_serves_exactly_the_routes_it_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    served: set[str] = set()
    for version in VERSIONS:
        with routes_of(version, monkeypatch):
            run = shared_run("dev", version.overrides)  # afresh while the routes are patched
        served = served_after(served, run)
        declared = {route.key for route in version.routes}
        assert served == declared, f"after '{version.label}': the stage serves {sorted(served)}, declared {declared}"
        stage = run.one(STAGE)
        assert "deploymentId" not in stage.inputs, f"after '{version.label}': {stage} pins a deployment"
        assert run.of_type(DEPLOYMENT) == [], f"after '{version.label}': an explicit deployment would go stale"
        check_permissions(version, run)
        check_authorizer(version, run)
        check_domain(version, run)


def check_permissions(version: Version, run: ProgramRun) -> None:
    """Every served route may invoke its function: a permission per route, scoped to this stage and route key."""
    sources = {permission.inputs["sourceArn"] for permission in run.of_type(PERMISSION)}
    for route in run.of_type(ROUTE):
        key = route.inputs["routeKey"]
        assert any(source.endswith(f"/dev/{key}") for source in sources), (
            f"after '{version.label}': route {key} is served without a permission to invoke its function"
        )


def check_authorizer(version: Version, run: ProgramRun) -> None:
    connect = next(route for route in run.of_type(ROUTE) if route.inputs["routeKey"] == "$connect")
    stage = run.one(STAGE)
    if version.overrides.get("auth") == "jwt":
        authorizer = run.one(AUTHORIZER)
        assert connect.inputs["authorizationType"] == "CUSTOM", f"after '{version.label}': $connect is open"
        assert authorizer.urn in stage.dependencies, f"after '{version.label}': stage may go live before the authorizer"
    else:
        assert run.of_type(AUTHORIZER) == [], f"after '{version.label}': an authorizer is left"
        assert connect.inputs["authorizationType"] == "NONE", f"after '{version.label}': $connect still authorized"
        assert "authorizerId" not in connect.inputs, f"after '{version.label}': $connect names an authorizer"


def check_domain(version: Version, run: ProgramRun) -> None:
    mappings = run.of_type(MAPPING)
    if "customDomainName" in version.overrides:
        assert len(mappings) == 1 and mappings[0].inputs["stage"] == "dev", f"after '{version.label}': {mappings}"
        assert run.outputs["wssUrl"] == "wss://chat.example.com", f"after '{version.label}': {run.outputs['wssUrl']}"
    else:
        assert mappings == [], f"after '{version.label}': the domain still maps the stage"
        assert "customDomainTarget" not in run.outputs, f"after '{version.label}': a domain target is exported"


def test_the_model_catches_an_explicit_deployment() -> None:
    """The lifecycle model is not vacuous: under the old design, removing a route leaves it served."""

    def fake(keys: set[str], explicit: bool) -> ProgramRun:
        stage_inputs: dict[str, Any] = {} if explicit else {"autoDeploy": True}
        resources = [_resource(STAGE, "websocket-stage", stage_inputs)]
        resources += [_resource(ROUTE, f"{key.strip('$')}-route", {"routeKey": key}) for key in keys]
        if explicit:
            resources.append(_resource(DEPLOYMENT, "websocket-deployment", {}))
        return ProgramRun(stack="dev", config={}, resources=tuple(resources), outputs={})

    before = {"$connect", "typing"}
    assert served_after(before, fake({"$connect"}, explicit=True)) == before, "model misses the stale route"
    assert served_after(before, fake({"$connect"}, explicit=False)) == {"$connect"}, "model keeps a deleted route"


def _resource(type_token: str, name: str, inputs: dict[str, Any]) -> RegisteredResource:
    return RegisteredResource(
        urn=f"urn:pulumi:dev::websocket-chat::{type_token}::{name}",
        type=type_token,
        name=name,
        id=name,
        inputs=inputs,
        outputs={},
        parent="",
        dependencies=frozenset(),
        custom=True,
    )


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


def test_a_code_change_updates_its_function_only(
    dev_run: ProgramRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(archive.SOURCE_ROOT / "handlers", tmp_path / "handlers", ignore=ignore)
    handler = tmp_path / "handlers" / f"{definition.CONNECT.module}.py"
    handler.write_text(handler.read_text() + "\n# a change\n")
    monkeypatch.setattr(archive, "SOURCE_ROOT", tmp_path)

    changed = run_program("dev")

    before, after = code_hashes(dev_run), code_hashes(changed)
    differing = sorted(name for name in before if before[name] != after[name])
    containing = sorted(
        f"{function.name}-function"
        for function in definition.FUNCTIONS
        if f"handlers/{definition.CONNECT.module}.py" in archive.archive_members(function)
    )
    assert differing == containing, f"functions updated: {differing}, expected only those zipping connect.py"
