"""Run the real Pulumi program (`__main__.py`) under Pulumi's mocks and return everything it registered.

It also holds the pieces `tests/hardening/harness.py` (components on their own, no `__main__.py`) runs on: the
record of a registered resource, the lookups over a run's resources, the AWS mocks and the recording monitor.

The one shared entry point for tests of the deployed resources (these tests and the policy pack's):

    run_program(stack="dev", overrides=None, *, preview=False, account_role=None, role_marker=None) -> ProgramRun

- `stack` picks `Pulumi.<stack>.yaml` (a stack without a file runs on the project defaults alone);
- `overrides` replaces config values: bare keys are this project's (`{"lambdaMemoryMb": 512}`), namespaced keys
  are taken as given (`{"aws:region": "eu-west-1"}`), and None removes a key;
- the config is assembled as the Pulumi CLI does it: `Pulumi.yaml` defaults, then the stack file, then overrides,
  every value a string; keys of `app.settings.SECRET_KEYS` (`jwtSecret`) are marked secret, as
  `pulumi config set --secret` marks them;
- the program runs afresh each call (a new root stack, new mocks, `__main__.py` executed again), so monkeypatched
  definitions (`app.definition.ROUTES`, `infra.archive.SOURCE_ROOT`) take effect;
- a program that raises is reported as `ProgramError`, carrying the exception and what was registered before it;
- `account_role` is what API Gateway's account settings report as the region's CloudWatch role (None: a fresh
  account), answered in place of the program's read of live AWS (`infra.account.read_cloudwatch_role_arn`);
  `role_marker` is the role ARN the stack's marker parameter holds (None: no marker), in place of
  `infra.account.read_logging_role_marker`.

    shared_run(stack="dev", overrides=None, *, account_role=None, role_marker=None) -> ProgramRun

is that run made once per test process for each config and handed to every test asking for the same one: for tests
that only read the run (never mutate it) and need no global state of the run they asked for (a fresh `run_program`
does). While a test patches a module of `app` (or `infra.archive`, `infra.account`), it runs afresh instead.

The mocks answer like AWS would, deterministically: auto-generated physical names (`<logical name>-<7 hex>`), ids,
ARNs, `invoke_arn`, `api_endpoint` and `execution_arn` in the stack's region and account `ACCOUNT_ID`, an SSM
parameter's `version` (`PARAMETER_VERSION`), a domain name's regional target, and `aws.get_region` (the one provider
function the program calls). The same program and config always yield the same values, so two runs can be compared.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

import infra.account
import infra.archive
from app.settings import PROJECT, SECRET_KEYS

REPOSITORY = Path(__file__).resolve().parents[2]
PROGRAM = REPOSITORY / "__main__.py"
PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
PARAMETER_VERSION = 1
"""The version a new SSM parameter reports (unless `AwsMocks` is given another)."""
REGIONAL_ZONE_ID = "Z1UJRXOUMOOFQ8"
"""The hosted zone id a regional API Gateway domain name reports (us-east-1's; the mocks use it in every region)."""

ConfigValue = str | int | float | bool | None


@dataclass(frozen=True)
class RegisteredResource:
    """One resource the program registered: what it asked for (`inputs`) and what the mocks answered (`outputs`).

    Property names are as on the wire (camelCase: `routeKey`, `defaultRouteSettings.throttlingBurstLimit`).
    """

    urn: str
    type: str
    """The type token, e.g. `aws:lambda/function:Function`."""
    name: str
    """The logical name, e.g. `send-message-function`."""
    id: str
    """The physical id the mocks assigned (what `resource.id` resolves to in the program)."""
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    parent: str
    """The parent's URN ("" for the root stack's children)."""
    dependencies: frozenset[str]
    """URNs of every resource this one depends on, explicit (`depends_on`) or through its inputs."""
    custom: bool
    """False for component resources."""
    retain_on_delete: bool = False
    """Registered with `retain_on_delete`: `pulumi destroy` (or dropping it from the program) leaves it in AWS."""

    def __str__(self) -> str:
        return self.urn

    def policy(self, key: str = "policy") -> dict[str, Any]:
        """A JSON policy input (`policy`, `assumeRolePolicy`...), parsed."""
        parsed: dict[str, Any] = json.loads(self.inputs[key])
        return parsed


class ResourceLookups:
    """Lookups over the resources a run registered (`resources`, in registration order)."""

    resources: tuple[RegisteredResource, ...]

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        """Every resource of one type, in registration order."""
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> RegisteredResource:
        """The one resource of this type (and logical name); AssertionError naming what exists when not exactly one."""
        found = [resource for resource in self.of_type(type_token) if name is None or resource.name == name]
        if len(found) != 1:
            names = ", ".join(resource.name for resource in self.of_type(type_token)) or "none"
            wanted = "anything" if name is None else repr(name)
            raise AssertionError(f"expected one {type_token} named {wanted}, found {len(found)} (registered: {names})")
        return found[0]

    def by_urn(self, urn: str) -> RegisteredResource:
        """The resource with this URN."""
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise AssertionError(f"no resource {urn} was registered")

    def children(self, parent: RegisteredResource) -> list[RegisteredResource]:
        """The resources registered with `parent=` this one."""
        return [resource for resource in self.resources if resource.parent == parent.urn]

    def __iter__(self) -> Iterator[RegisteredResource]:
        return iter(self.resources)


@dataclass(frozen=True)
class ProgramRun(ResourceLookups):
    """Everything one run of the program registered, and its stack outputs (resolved)."""

    stack: str
    config: Mapping[str, str]
    resources: tuple[RegisteredResource, ...]
    outputs: Mapping[str, Any]


class ProgramError(Exception):
    """The program raised; `error` is what it raised and `resources` what it had registered before that."""

    def __init__(self, error: BaseException, resources: tuple[RegisteredResource, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.resources = resources


def stack_config(stack: str, overrides: Mapping[str, ConfigValue] | None = None) -> dict[str, str]:
    """The config the Pulumi CLI would hand the program: project defaults, the stack file, then overrides."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    config: dict[str, str] = {}
    for key, declaration in (project.get("config") or {}).items():
        default = declaration.get("default") if isinstance(declaration, dict) else declaration
        if default is not None:
            config[_namespaced(key)] = _as_config_string(default)
    stack_file = REPOSITORY / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        for key, value in ((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}).items():
            config[_namespaced(key)] = _as_config_string(value)
    for key, override in (overrides or {}).items():
        if override is None:
            config.pop(_namespaced(key), None)
        else:
            config[_namespaced(key)] = _as_config_string(override)
    return config


def run_program(
    stack: str = "dev",
    overrides: Mapping[str, ConfigValue] | None = None,
    *,
    preview: bool = False,
    account_role: str | None = None,
    role_marker: str | None = None,
) -> ProgramRun:
    """Run `__main__.py` under mocks with a stack's config; see the module docstring."""
    config = stack_config(stack, overrides)
    mocks = AwsMocks(region=config.get("aws:region", DEFAULT_REGION))
    monitor = RecordingMonitor(mocks)

    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh root stack for this run
    secret_keys = [key for key in config if key.split(":", 1)[0] == PROJECT and key.split(":", 1)[1] in SECRET_KEYS]
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)

    def program() -> None:
        # A stack without `aws:region` deploys where the environment points, as the provider does.
        environment = {"AWS_REGION": mocks.region}
        with (
            mock.patch.object(infra.account, "read_cloudwatch_role_arn", lambda region, profile=None: account_role),
            mock.patch.object(
                infra.account, "read_logging_role_marker", lambda region, name, profile=None: role_marker
            ),
            mock.patch.dict(os.environ, environment),
        ):
            runpy.run_path(str(PROGRAM), run_name="__main__")

    try:
        # The SDK walks the Python stack per resource for the engine's source positions: mocks have no engine.
        with mock.patch.object(pulumi_resource, "_get_stack_trace", source_pb2.StackTrace):
            _sync_await(run_pulumi_func(program))
    except Exception as error:
        raise ProgramError(error, monitor.registered()) from error

    root = pulumi_settings.get_root_resource()
    exported: dict[str, Any] = dict(getattr(root, "outputs", {}))
    outputs = _sync_await(pulumi.Output.from_input(exported).future()) if exported else {}
    return ProgramRun(stack=stack, config=config, resources=monitor.registered(), outputs=outputs or {})


def _program_globals(modules: tuple[ModuleType, ...]) -> dict[tuple[str, str], int]:
    """The identity of every global of these modules: a monkeypatch changes one."""
    return {(module.__name__, name): id(value) for module in modules for name, value in vars(module).items()}


_GUARDED = tuple(module for name, module in sorted(sys.modules.items()) if name.split(".")[0] in ("app", "infra"))
"""The program's modules loaded by now (`app`, `infra.archive`, `infra.account`...), which tests patch."""
_PRISTINE = _program_globals(_GUARDED)
"""Their globals as imported, before any test could patch them."""
_shared_runs: dict[tuple[str, tuple[tuple[str, ConfigValue], ...], str | None, str | None], ProgramRun] = {}


def shared_run(
    stack: str = "dev",
    overrides: Mapping[str, ConfigValue] | None = None,
    *,
    account_role: str | None = None,
    role_marker: str | None = None,
) -> ProgramRun:
    """`run_program`'s run for this config, shared by every test of this process that asks for it; see the docstring."""
    now = _program_globals(_GUARDED)
    if any(now.get(name) != identity for name, identity in _PRISTINE.items()):  # a submodule imported since is no patch
        return run_program(stack, overrides, account_role=account_role, role_marker=role_marker)
    key = (stack, tuple(sorted((overrides or {}).items())), account_role, role_marker)
    if key not in _shared_runs:
        _shared_runs[key] = run_program(stack, overrides, account_role=account_role, role_marker=role_marker)
    return _shared_runs[key]


class AwsMocks(pulumi_mocks.Mocks):
    """Answers resource registrations and provider calls the way AWS would, deterministically."""

    def __init__(self, region: str, parameter_version: int = PARAMETER_VERSION) -> None:
        self.region = region
        self.parameter_version = parameter_version
        self._answers: dict[str, Callable[[str, str, dict[str, Any]], dict[str, Any]]] = {
            "aws:apigatewayv2/api:Api": self._api,
            "aws:apigatewayv2/stage:Stage": self._stage,
            "aws:lambda/function:Function": self._function,
            "aws:iam/role:Role": self._named("arn:aws:iam::{account}:role/{name}"),
            "aws:iam/policy:Policy": self._named("arn:aws:iam::{account}:policy/{name}"),
            "aws:dynamodb/table:Table": self._named("arn:aws:dynamodb:{region}:{account}:table/{name}"),
            "aws:cloudwatch/logGroup:LogGroup": self._named("arn:aws:logs:{region}:{account}:log-group:{name}"),
            "aws:sns/topic:Topic": self._named("arn:aws:sns:{region}:{account}:{name}"),
            "aws:ssm/parameter:Parameter": self._parameter,
            "aws:apigatewayv2/domainName:DomainName": self._domain_name,
        }

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """The id and output state of a new resource: its inputs plus what AWS would compute."""
        inputs = dict(args.inputs)
        answer = self._answers.get(args.typ)
        if answer is None:
            return _token(args.typ, args.name, 12), inputs
        state = answer(args.typ, args.name, inputs)
        return state.pop("id"), {**inputs, **state}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        """Provider functions (invokes): `aws.get_region`; one the program starts to call must be answered here."""
        if args.token == "aws:index/getRegion:getRegion":
            return {
                "id": self.region,
                "name": self.region,
                "region": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
                "description": self.region,
            }, []
        raise NotImplementedError(f"the mocks do not answer {args.token}; add it to tests/infra/mocks.py")

    def _named(self, arn_pattern: str) -> Callable[[str, str, dict[str, Any]], dict[str, Any]]:
        def answer(type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
            name = inputs.get("name") or _auto_name(type_token, logical_name)
            arn = arn_pattern.format(region=self.region, account=ACCOUNT_ID, name=name)
            return {"id": name, "name": name, "arn": arn}

        return answer

    def _api(self, type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        api_id = _token(type_token, logical_name, 10)
        return {
            "id": api_id,
            "name": inputs.get("name") or _auto_name(type_token, logical_name),
            "apiEndpoint": f"wss://{api_id}.execute-api.{self.region}.amazonaws.com",
            "executionArn": f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{api_id}",
            "arn": f"arn:aws:apigateway:{self.region}::/apis/{api_id}",
        }

    def _stage(self, type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        api_id, name = inputs["apiId"], inputs["name"]
        return {
            "id": name,
            "invokeUrl": f"wss://{api_id}.execute-api.{self.region}.amazonaws.com/{name}",
            "executionArn": f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{api_id}/{name}",
            "arn": f"arn:aws:apigateway:{self.region}::/apis/{api_id}/stages/{name}",
        }

    def _parameter(self, type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        name = inputs.get("name") or _auto_name(type_token, logical_name)
        arn = f"arn:aws:ssm:{self.region}:{ACCOUNT_ID}:parameter/{name}"
        return {"id": name, "name": name, "arn": arn, "version": self.parameter_version}

    def _domain_name(self, type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        configuration = dict(inputs["domainNameConfiguration"])
        target = f"d-{_token(type_token, logical_name, 10)}.execute-api.{self.region}.amazonaws.com"
        configuration["targetDomainName"] = target
        configuration["hostedZoneId"] = REGIONAL_ZONE_ID
        return {"id": inputs["domainName"], "domainNameConfiguration": configuration}

    def _function(self, type_token: str, logical_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        name = inputs.get("name") or _auto_name(type_token, logical_name)
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        return {
            "id": name,
            "name": name,
            "arn": arn,
            "qualifiedArn": f"{arn}:$LATEST",
            "invokeArn": f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        }


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock engine, also keeping each registration's inputs, parent and dependencies for the tests."""

    def __init__(self, mocks: AwsMocks) -> None:
        super().__init__(mocks)
        self._requests: dict[str, tuple[str, str, frozenset[str], bool, bool]] = {}
        self._parents: dict[str, str] = {}
        self._inputs: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802  (the gRPC method name)
        """Record the registration, then answer it as the stock mock monitor does."""
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # untyped in the SDK
        if request.type != "pulumi:pulumi:Stack":
            urn = response.urn
            self._order.append(urn)
            dependencies = frozenset(request.dependencies)
            retained = bool(request.retainOnDelete)
            self._requests[urn] = (request.type, request.name, dependencies, bool(request.custom), retained)
            self._inputs[urn] = dict(pulumi.runtime.rpc.deserialize_properties(request.object))
            self._parents[urn] = request.parent
        return response

    def registered(self) -> tuple[RegisteredResource, ...]:
        """Every resource registered so far, in order."""
        resources = []
        for urn in self._order:
            type_token, name, dependencies, custom, retained = self._requests[urn]
            registration = self.resources.get(urn)
            resources.append(
                RegisteredResource(
                    urn=urn,
                    type=type_token,
                    name=name,
                    id=registration.id if registration is not None else "",
                    inputs=self._inputs[urn],
                    outputs=dict(registration.state) if registration is not None else {},
                    parent=self._parents[urn],
                    dependencies=dependencies,
                    custom=custom,
                    retain_on_delete=retained,
                )
            )
        return tuple(resources)


def _namespaced(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _as_config_string(value: Any) -> str:
    """Config values reach a program as strings; booleans as the CLI writes them, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return str(value)


def _token(type_token: str, logical_name: str, length: int) -> str:
    return hashlib.sha256(f"{type_token}::{logical_name}".encode()).hexdigest()[:length]


def _auto_name(type_token: str, logical_name: str) -> str:
    """Pulumi's auto-naming: the logical name and seven random hex digits (here derived, so runs repeat)."""
    return f"{logical_name}-{_token(type_token, logical_name, 7)}"
