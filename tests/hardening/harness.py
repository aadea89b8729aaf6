"""Construct components directly in a small Pulumi program under mocks and return what they registered.

    run_components(build) -> ComponentRun

`build()` runs inside a fresh Pulumi program (new root stack, new mocks) and returns anything `Output.from_input`
accepts (a dict of component outputs, typically); `ComponentRun.value` holds it resolved. The mocks answer like AWS
would, deterministically: auto-generated names (`<logical name>-<7 hex>`), ids, ARNs and the computed attributes the
components read (`invoke_arn`, a domain's `target_domain_name`...). A build that raises, or an output whose
`apply` raises, surfaces as `ComponentsError`.

The whole-stack tests have their own runner (`tests/infra/mocks.py`); this one needs no `__main__.py`, so the
hardening components are tested on their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from app.settings import PROJECT

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARAMETER_VERSION = 3
"""The version an SSM parameter reports (it counts the value's changes)."""
REGIONAL_ZONE_ID = "Z1UJRXOUMOOFQ8"
"""API Gateway's regional hosted zone in us-east-1, which a regional domain name reports."""


@dataclass(frozen=True)
class Registered:
    """One registered resource: URN, id, type, logical name, inputs (camelCase, as on the wire), outputs, parent."""

    urn: str
    id: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    parent: str
    dependencies: frozenset[str]

    def __str__(self) -> str:
        return self.urn

    def policy(self, key: str = "policy") -> dict[str, Any]:
        """A JSON policy input, parsed."""
        parsed: dict[str, Any] = json.loads(self.inputs[key])
        return parsed


@dataclass(frozen=True)
class ComponentRun:
    """What one program registered, and the value its build function returned, resolved."""

    resources: tuple[Registered, ...]
    value: Any

    def of_type(self, type_token: str) -> list[Registered]:
        """Every resource of one type, in registration order."""
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Registered:
        """The resource of this type (and logical name); AssertionError naming what exists when not exactly one."""
        found = [resource for resource in self.of_type(type_token) if name is None or resource.name == name]
        if len(found) != 1:
            names = ", ".join(resource.name for resource in self.of_type(type_token)) or "none"
            raise AssertionError(f"expected one {type_token} named {name or 'anything'}, registered: {names}")
        return found[0]


class ComponentsError(Exception):
    """The build (or an output's apply) raised; `error` is what it raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def run_components(build: Callable[[], Any]) -> ComponentRun:
    """Run `build` as a fresh Pulumi program under mocks; see the module docstring."""
    mocks = _AwsMocks()
    monitor = _RecordingMonitor(mocks)
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh root stack for this run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False, monitor=monitor)

    resolved: list[Any] = []

    def program() -> None:
        resolved.append(_sync_await(pulumi.Output.from_input(build()).future()))

    try:
        _sync_await(run_pulumi_func(program))
    except Exception as error:
        raise ComponentsError(error) from error
    return ComponentRun(resources=monitor.registered(), value=resolved[0] if resolved else None)


def _token(type_token: str, logical_name: str, length: int) -> str:
    return hashlib.sha256(f"{type_token}::{logical_name}".encode()).hexdigest()[:length]


class _AwsMocks(pulumi_mocks.Mocks):
    """Ids, auto-names, ARNs and computed attributes for the resource types the hardening components create."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        auto_name = f"{args.name}-{_token(args.typ, args.name, 7)}"
        name = inputs.get("name") or auto_name
        state: dict[str, Any] = {}
        if args.typ == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
            invoke = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
            state = {"id": name, "name": name, "arn": arn, "invokeArn": invoke}
        elif args.typ == "aws:ssm/parameter:Parameter":
            arn = f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/{name}"
            state = {"id": name, "name": name, "arn": arn, "version": PARAMETER_VERSION}
        elif args.typ == "aws:iam/role:Role":
            state = {"id": name, "name": name, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"}
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state = {"id": name, "name": name, "arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}"}
        elif args.typ == "aws:sns/topic:Topic":
            state = {"id": name, "name": name, "arn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}"}
        elif args.typ == "aws:apigatewayv2/domainName:DomainName":
            configuration = dict(inputs["domainNameConfiguration"])
            target = f"d-{_token(args.typ, args.name, 10)}.execute-api.{REGION}.amazonaws.com"
            configuration["targetDomainName"] = target
            configuration["hostedZoneId"] = REGIONAL_ZONE_ID
            state = {"id": inputs["domainName"], "domainNameConfiguration": configuration}
        else:
            state = {"id": _token(args.typ, args.name, 10)}
        resource_id = state.pop("id")
        return resource_id, {**inputs, **state}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the hardening components call no provider functions, but {args.token} was called")


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock engine, also keeping each registration's inputs, parent and dependencies."""

    def __init__(self, mocks: _AwsMocks) -> None:
        super().__init__(mocks)
        self._registrations: list[tuple[Any, Any, dict[str, Any]]] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802  (the gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = dict(pulumi.runtime.rpc.deserialize_properties(request.object, keep_unknowns=False))
            self._registrations.append((response, request, inputs))
        return response

    def registered(self) -> tuple[Registered, ...]:
        return tuple(
            Registered(
                urn=response.urn,
                id=response.id,
                type=request.type,
                name=request.name,
                inputs=inputs,
                outputs=dict(self.resources[response.urn].state) if response.urn in self.resources else {},
                parent=request.parent,
                dependencies=frozenset(request.dependencies),
            )
            for response, request, inputs in self._registrations
        )
