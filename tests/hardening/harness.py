"""Construct components directly in a small Pulumi program under mocks and return what they registered.

    run_components(build) -> ComponentRun

`build()` runs inside a fresh Pulumi program (new root stack, new mocks) and returns anything `Output.from_input`
accepts (a dict of component outputs, typically); `ComponentRun.value` holds it resolved. A build that raises, or an
output whose `apply` raises, surfaces as `ComponentsError`.

The whole-stack runner (`tests/infra/mocks.py`) executes `__main__.py`; this one needs none, so the hardening
components are tested on their own. Both run on the same pieces from that module: `RegisteredResource` (with
`policy()`), the `of_type`/`one`/`by_urn`/`children` lookups, `AwsMocks` (deterministic auto-names, ids, ARNs and
the computed attributes the components read) and the recording monitor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from app.settings import PROJECT
from tests.infra.mocks import DEFAULT_REGION, AwsMocks, RecordingMonitor, RegisteredResource, ResourceLookups

REGION = DEFAULT_REGION
"""The region the components are built in."""
PARAMETER_VERSION = 3
"""The version an SSM parameter reports here: not 1, so a component that assumes a fresh parameter is caught."""


@dataclass(frozen=True)
class ComponentRun(ResourceLookups):
    """What one program registered, and the value its build function returned, resolved."""

    resources: tuple[RegisteredResource, ...]
    value: Any


class ComponentsError(Exception):
    """The build (or an output's apply) raised; `error` is what it raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def run_components(build: Callable[[], Any]) -> ComponentRun:
    """Run `build` as a fresh Pulumi program under mocks; see the module docstring."""
    mocks = AwsMocks(region=REGION, parameter_version=PARAMETER_VERSION)
    monitor = RecordingMonitor(mocks)
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
