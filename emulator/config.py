"""What the emulator serves and how: the app's routes from `app.definition`, the stack's settings, run-time flags.

Nothing here copies the route table: `routes_from_definition()` converts it when called, and tests pass their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app import definition
from app.settings import SettingsError, StackSettings, settings_from_stack_config
from emulator.issuer import KEY_FILE
from handlers.aws_facts import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS
from handlers.tokens import signing_secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository: holds `Pulumi.<stack>.yaml`, the `handlers` package and the chat page in `web/`."""

DEFAULT_REGION = "us-east-1"


class EmulatorConfigError(ValueError):
    """The stack's config is missing or invalid, or a flag is out of range; the message says what to fix."""


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the emulator runs it."""

    name: str
    handler: str
    """Dotted `module.function` path, as in Lambda's `handler` setting."""
    code_root: Path
    """The directory holding the function's code (the repository for the real handlers)."""
    packages: tuple[str, ...]
    """Top-level packages of `code_root` that the deployment zip holds; only they are importable in the worker."""
    environment: tuple[str, ...]
    """Names of the environment variables the stack gives this function (values are filled in at start)."""
    fans_out: bool = False
    """Posts to every connection, so the stack sizes it with `broadcastMemoryMb` (`Function.fans_out`)."""


@dataclass(frozen=True)
class RouteSpec:
    """A route key and the function that serves it."""

    key: str
    function: FunctionSpec


def routes_from_definition(code_root: Path = PROJECT_ROOT) -> tuple[RouteSpec, ...]:
    """The routes of `app.definition`, each served by its real handler from the `handlers` package."""
    specs: dict[str, FunctionSpec] = {}
    routes = []
    for route in definition.ROUTES:
        function = route.function
        if function.name not in specs:
            specs[function.name] = function_spec(function, code_root)
        routes.append(RouteSpec(key=route.key, function=specs[function.name]))
    return tuple(routes)


def invoked_from_definition(code_root: Path = PROJECT_ROOT) -> tuple[FunctionSpec, ...]:
    """The functions no route serves (`app.definition.INVOKED_FUNCTIONS`), served by the Lambda Invoke API."""
    return tuple(function_spec(function, code_root) for function in definition.INVOKED_FUNCTIONS)


def function_spec(function: definition.Function, code_root: Path = PROJECT_ROOT) -> FunctionSpec:
    """How the emulator runs one function of `app.definition` (a route's, or `AUTHORIZER`): its real handler."""
    return FunctionSpec(
        name=function.name,
        handler=function.handler,
        code_root=code_root,
        packages=(definition.HANDLERS_PACKAGE,),
        environment=function.environment,
        fans_out=function.fans_out,
    )


def route_selection_path(expression: str = definition.ROUTE_SELECTION_EXPRESSION) -> tuple[str, ...]:
    """The JSON path that `$request.body.a.b` selects on: `("a", "b")`."""
    prefix = "$request.body."
    if not expression.startswith(prefix) or not expression[len(prefix) :]:
        raise EmulatorConfigError(f"route selection expression {expression!r} is not of the form $request.body.PATH")
    return tuple(expression[len(prefix) :].split("."))


@dataclass(frozen=True)
class StackConfig:
    """What the emulator takes from `Pulumi.<stack>.yaml`: the validated settings and the AWS region."""

    settings: StackSettings
    region: str


def load_stack_config(stack: str, project_root: Path = PROJECT_ROOT) -> StackConfig:
    """Read and validate `Pulumi.<stack>.yaml` the way the Pulumi program does; a bad or missing file fails clearly."""
    path = project_root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        found = sorted(
            candidate.name[len("Pulumi.") : -len(".yaml")] for candidate in project_root.glob("Pulumi.*.yaml")
        )
        available = f"stacks with a config file: {', '.join(found)}" if found else "no stack config files exist yet"
        raise EmulatorConfigError(f"{path} does not exist; pass --stack NAME ({available})")
    document = _read_yaml(path)
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise EmulatorConfigError(f"{path}: `config` must be a mapping of keys to values")
    try:
        settings = settings_from_stack_config(config, stack)
    except SettingsError as error:
        raise EmulatorConfigError(f"{path}: {error}") from None
    region = config.get("aws:region") or _project_region(project_root) or DEFAULT_REGION
    return StackConfig(settings=settings, region=str(region))


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise EmulatorConfigError(f"{path} is not valid YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise EmulatorConfigError(f"{path} must hold a YAML mapping")
    return document


def _project_region(project_root: Path) -> str | None:
    """`aws:region` declared in Pulumi.yaml's `config:` section (a plain value or `{default: ...}`), if any."""
    path = project_root / "Pulumi.yaml"
    if not path.is_file():
        return None
    config = _read_yaml(path).get("config") or {}
    value = config.get("aws:region") if isinstance(config, Mapping) else None
    if isinstance(value, Mapping):
        value = value.get("value", value.get("default"))
    return str(value) if value else None


@dataclass(frozen=True)
class EmulatorOptions:
    """Everything one emulator run needs. The CLI builds it from flags; tests build it directly."""

    stack: str
    settings: StackSettings
    routes: tuple[RouteSpec, ...]
    region: str = DEFAULT_REGION
    host: str = "127.0.0.1"
    port: int = 3001
    dynamodb_endpoint: str | None = None
    """Use this DynamoDB-compatible endpoint instead of the embedded moto server."""
    idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS
    max_duration_seconds: float = MAX_CONNECTION_SECONDS
    function_timeout_seconds: float | None = None
    """Overrides the stack's `lambdaTimeoutSeconds` (tests use fractions of a second)."""
    max_workers_per_function: int = 8
    """Upper bound on concurrent workers of one function; the stack's reserved concurrency lowers it further."""
    callback_delay_seconds: float = 0.0
    """Fault injection: wait this long before answering every `@connections` request."""
    callback_throttle_fraction: float = 0.0
    """Fault injection: answer this fraction of `@connections` requests with 429 LimitExceededException."""
    web_root: Path | None = field(default_factory=lambda: PROJECT_ROOT / "web")
    """The chat page's directory, served at `/` when it exists."""
    prewarm: bool = True
    """Start one worker per function before printing the ready lines, so the first requests find warm workers."""
    fork_workers: bool = True
    """Fork workers from one process that imported boto3 (quick); False starts each as a fresh interpreter."""
    invoked: tuple[FunctionSpec, ...] = ()
    """Functions no route serves, invoked through the Lambda Invoke API (`publish`); the CLI serves the app's."""
    authorizer: FunctionSpec | None = None
    """The Lambda REQUEST authorizer guarding `$connect` (`app.definition.AUTHORIZER` when auth is `jwt`)."""
    token_secret: str | None = field(default=None, repr=False)
    """The HS256 secret (`CHAT_TOKEN_SECRET`) of a stack without `jwtIssuer`; None serves a local issuer instead."""
    issuer_key_file: Path = KEY_FILE
    """Where the local issuer keeps its key and address for `python -m client token` (ignored by git)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names the emulator answers besides IP addresses and `localhost` (DNS rebinding defence)."""
    allowed_origins: tuple[str, ...] = ()
    """Page origins (`http://host:port`) that may open a WebSocket besides the emulator's own page."""
    reload: bool = False
    """Watch the functions' packages (and `definition_file`) and serve a new version when a file is saved."""
    definition_file: Path | None = None
    """The app definition the routes came from, re-read on every reload (None: the routes given stay)."""

    def __post_init__(self) -> None:
        checks = (
            (0 <= self.port <= 65535, f"port must be 0-65535, got {self.port}"),
            (self.idle_timeout_seconds > 0, f"idle timeout must be positive, got {self.idle_timeout_seconds}"),
            (self.max_duration_seconds > 0, f"max duration must be positive, got {self.max_duration_seconds}"),
            (
                self.function_timeout_seconds is None or self.function_timeout_seconds > 0,
                f"function timeout must be positive, got {self.function_timeout_seconds}",
            ),
            (
                self.max_workers_per_function >= 1,
                f"max workers per function must be at least 1, got {self.max_workers_per_function}",
            ),
            (self.callback_delay_seconds >= 0, f"callback delay must be 0 or more, got {self.callback_delay_seconds}"),
            (
                0 <= self.callback_throttle_fraction <= 1,
                f"callback throttle fraction must be from 0 to 1, got {self.callback_throttle_fraction}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise EmulatorConfigError(message)
        if self.token_secret is not None:
            try:
                signing_secret(self.token_secret)
            except ValueError as error:  # the message gives the length, never the secret
                raise EmulatorConfigError(f"{definition.DEV_TOKEN_SECRET_VARIABLE}: {error}") from None
        keys = [route.key for route in self.routes]
        if len(set(keys)) != len(keys):
            raise EmulatorConfigError(f"route keys must be unique, got {keys}")

    @property
    def stage(self) -> str:
        """The stage name: the stack's `stageName`, by default the stack name."""
        return self.settings.stage_name

    @property
    def function_timeout(self) -> float:
        """Seconds a function may run before its worker is killed."""
        if self.function_timeout_seconds is not None:
            return self.function_timeout_seconds
        return float(self.settings.lambda_timeout_seconds)

    @property
    def workers_per_function(self) -> int:
        """Concurrent workers allowed per function."""
        reserved = self.settings.reserved_concurrency
        return min(self.max_workers_per_function, reserved) if reserved else self.max_workers_per_function
