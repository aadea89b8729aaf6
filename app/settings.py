"""A stack's settings: parsed and validated from Pulumi config values, with the defaults declared here.

A bad value fails with one message naming the key, before anything is built; `Pulumi.yaml`'s config block and the
README's table are generated from here (`python -m app.settings_doc --write`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.aws_facts import FRAME_LIMIT_BYTES, INTEGRATION_TIMEOUT_SECONDS

PROJECT = "websocket-chat"
"""The Pulumi project name, which is also the namespace of its config keys (`websocket-chat:stageName`)."""

SUPPORTED_RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")
"""Python runtimes AWS Lambda supports; the policy pack also checks AWS's end-of-support dates, so one that ages
out is stopped before this list is edited."""

ARCHITECTURES = ("arm64", "x86_64")
# fmt: off
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
# fmt: on
"""The retention periods CloudWatch Logs accepts."""
EXECUTION_LOGGING_LEVELS = ("OFF", "ERROR", "INFO")
BILLING_MODES = ("PAY_PER_REQUEST", "PROVISIONED")
AUTH_MODES = ("none", "jwt")
RETIRED_AUTH_MODE = "token"
"""The old `v1` token format's mode: refused with the way to move to `jwt` (docs/hardening.md, "Migrating")."""
RETIRED_SECRET_KEY = "authTokenSecret"
SECRET_KEY = "jwtSecret"
"""The HS256 secret of `auth: jwt` without an issuer: a Pulumi secret, stored by the stack in SSM."""
MIGRATION = (
    f"auth: token and {RETIRED_SECRET_KEY} were replaced by standard JWTs: set {PROJECT}:auth to jwt, move the "
    f'secret with `pulumi config set --secret {SECRET_KEY} "$(pulumi config get {RETIRED_SECRET_KEY})"` and '
    f"`pulumi config rm {RETIRED_SECRET_KEY}`, and mint new tokens (python -m client token, or any HS256 JWT "
    "library); v1 tokens are no longer accepted (docs/hardening.md)"
)
LOGGING_ROLE_MODES = ("auto", "external")
"""Who provides API Gateway's account-level CloudWatch role: this program when the region has none, or someone else."""

STAGE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
"""API Gateway stage names: letters, digits, hyphens and underscores, at most 128."""


class SettingsError(ValueError):
    """A config value is missing, malformed or out of range; the message names the key."""


@dataclass(frozen=True)
class StackSettings:
    """Every value the program (and the emulator) takes from a stack's config."""

    stage_name: str
    lambda_runtime: str = "python3.13"
    lambda_architecture: str = "arm64"
    lambda_memory_mb: int = 256
    broadcast_memory_mb: int = 1769
    lambda_timeout_seconds: int = INTEGRATION_TIMEOUT_SECONDS  # API Gateway stops waiting then
    max_message_bytes: int = 16 * 1024
    broadcast_max_posts_per_second: int = 9000
    broadcast_shard_size: int = 5000
    message_rate_per_second: float = 5.0
    message_burst: int = 10
    max_rooms_per_connection: int = 20
    history_limit: int = 50
    history_retention_days: int = 7
    presence_max_members: int = 100
    log_retention_days: int = 14
    throttling_burst_limit: int = 500
    throttling_rate_limit: float = 1000.0
    execution_logging_level: str = "OFF"
    table_billing_mode: str = "PAY_PER_REQUEST"
    table_read_capacity: int | None = None
    table_write_capacity: int | None = None
    point_in_time_recovery: bool = False
    table_kms_key_arn: str | None = None
    auth: str = "none"
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_url: str | None = None
    jwt_name_claim: str | None = None
    custom_domain_name: str | None = None
    certificate_arn: str | None = None
    hosted_zone_id: str | None = None
    alarm_email: str | None = None
    alarm_function_errors: int = 1
    alarm_function_throttles: int = 1
    alarm_api_errors: int = 5
    tracing: bool = False
    reserved_concurrency: int | None = None
    api_gateway_logging_role: str = "auto"
    permissions_boundary_arn: str | None = None

    @property
    def jwt_mode(self) -> str | None:
        """`issuer` (an OIDC issuer's keys), `secret` (HS256 with `jwtSecret`), or None when auth is off."""
        if self.auth != "jwt":
            return None
        return "issuer" if self.jwt_issuer is not None else "secret"

    def memory_mb(self, fans_out: bool) -> int:
        """Memory of a function: `broadcast_memory_mb` for one that posts to every connection."""
        return self.broadcast_memory_mb if fans_out else self.lambda_memory_mb


@dataclass(frozen=True)
class Key:
    """One config key: its name in Pulumi config, the settings field it fills, and how to read it."""

    name: str
    field: str
    parse: Callable[[str, Any], Any]
    description: str


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _as_int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"{_key(key)} must be a whole number from {low} to {high}, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{_key(key)} must be a whole number from {low} to {high}, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{_key(key)} must be a whole number from {low} to {high}, got {number}")
    return number


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    return lambda key, value: _as_int(key, value, low, high)


def _choice(choices: tuple[Any, ...]) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        for choice in choices:
            if str(value).strip() == str(choice):
                return choice
        listed = ", ".join(str(choice) for choice in choices)
        raise SettingsError(f"{_key(key)} must be one of {listed}, got {value!r}")

    return parse


def _positive_float(key: str, value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"{_key(key)} must be a positive number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise SettingsError(f"{_key(key)} must be a positive number, got {value!r}")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise SettingsError(f"{_key(key)} must be true or false, got {value!r}")


def _stage_name(key: str, value: Any) -> str:
    text = str(value)
    if not STAGE_NAME_PATTERN.fullmatch(text) or text == "$default":
        raise SettingsError(
            f"{_key(key)} must be 1 to 128 letters, digits, hyphens or underscores (API Gateway's rule for "
            f"stage names), got {value!r}"
        )
    return text


def _runtime(key: str, value: Any) -> str:
    # Looked up at call time, so the list is read where it is defined (tests age a runtime out by patching it).
    runtime: str = _choice(SUPPORTED_RUNTIMES)(key, value)
    return runtime


def _kms_key_arn(key: str, value: Any) -> str:
    text = str(value).strip()
    alias = re.fullmatch(r"arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:alias/([A-Za-z0-9/_-]+)", text)
    if alias:
        # DynamoDB reports the key's ARN, so an alias would show as a change on every `pulumi up`.
        raise SettingsError(
            f"{_key(key)} must be the key's ARN, not the alias {text}: DynamoDB stores the key ARN, so an alias shows "
            f"a change on every up; find it with `aws kms describe-key --region {alias[1]} --key-id alias/{alias[2]} "
            "--query KeyMetadata.Arn`"
        )
    if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", text):
        raise SettingsError(
            f"{_key(key)} must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got {value!r}"
        )
    return text


def _auth(key: str, value: Any) -> str:
    if str(value).strip() == RETIRED_AUTH_MODE:
        raise SettingsError(f"{_key(key)} token is no longer supported: {MIGRATION}")
    mode: str = _choice(AUTH_MODES)(key, value)
    return mode


def _url(key: str, value: Any) -> str:
    """An https URL, or http on a loopback host (an issuer running on this machine, as the emulator's tests use)."""
    text = str(value).strip()
    if not re.fullmatch(r"(https://[^\s/?#]+|http://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?)(/[^\s?#]*)?", text):
        raise SettingsError(f"{_key(key)} must be an https:// URL (http:// only on a loopback host), got {value!r}")
    return text


def _pattern(pattern: str, what: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).strip()
        if not re.fullmatch(pattern, text):
            raise SettingsError(f"{_key(key)} must be {what}, got {value!r}")
        return text

    return parse


KEYS: tuple[Key, ...] = (
    Key("stageName", "stage_name", _stage_name, "API Gateway stage name; defaults to the stack name."),
    Key("lambdaRuntime", "lambda_runtime", _runtime, "Python runtime of every function."),
    Key("lambdaArchitecture", "lambda_architecture", _choice(ARCHITECTURES), "CPU architecture of every function."),
    Key(
        "lambdaMemoryMb",
        "lambda_memory_mb",
        _int_in(128, 10240),
        "Memory of every function but those that broadcast, in MB.",
    ),
    Key(
        "broadcastMemoryMb",
        "broadcast_memory_mb",
        _int_in(128, 10240),
        "Memory of the functions that broadcast, in MB: Lambda gives CPU in proportion to memory, and a broadcast "
        "is CPU-bound (it signs one request per connection).",
    ),
    Key(
        "lambdaTimeoutSeconds",
        "lambda_timeout_seconds",
        _int_in(1, 60),
        "Function timeout in seconds; API Gateway waits far less than Lambda's maximum, so large values are refused.",
    ),
    Key(
        "maxMessageBytes",
        "max_message_bytes",
        _int_in(1, FRAME_LIMIT_BYTES - 1024),
        "Largest chat message accepted, in UTF-8 bytes; the broadcast envelope must fit in one WebSocket frame.",
    ),
    Key(
        "broadcastMaxPostsPerSecond",
        "broadcast_max_posts_per_second",
        _int_in(1, 100000),
        "Most callback API posts per second one broadcast may make. API Gateway's account-wide request quota also "
        "serves every inbound message, so keep this below it; a 429 slows the broadcast further on its own.",
    ),
    Key(
        "broadcastShardSize",
        "broadcast_shard_size",
        _int_in(1, 1000000),
        "Members above which one broadcast is split across parallel invocations of the broadcasting function, each "
        "posting its part of the room at its share of broadcastMaxPostsPerSecond.",
    ),
    Key(
        "messageRatePerSecond",
        "message_rate_per_second",
        _positive_float,
        "Messages per second one connection may send, sustained; faster senders get an error frame saying when to "
        "retry, and nothing is broadcast.",
    ),
    Key(
        "messageBurst",
        "message_burst",
        _int_in(1, 1000),
        "Messages one connection may send at once after a pause (the size of its token bucket).",
    ),
    Key(
        "maxRoomsPerConnection",
        "max_rooms_per_connection",
        _int_in(1, 100),
        "Rooms one connection may be in at once.",
    ),
    Key(
        "historyLimit",
        "history_limit",
        _int_in(1, 500),
        "Most messages a history answer (and the history in a joined frame) carries, before the frame limit.",
    ),
    Key(
        "historyRetentionDays",
        "history_retention_days",
        _int_in(1, 365),
        "Days each room's messages are kept; DynamoDB's TTL deletes them afterwards.",
    ),
    Key(
        "presenceMaxMembers",
        "presence_max_members",
        _int_in(0, 10000),
        "Largest room whose joins and leaves are announced to its members (0: none). Above it nobody is told, so "
        "a join costs no broadcast; the joined frame says so, and who lists the members.",
    ),
    Key(
        "logRetentionDays",
        "log_retention_days",
        _choice(LOG_RETENTION_DAYS),
        "Retention of the functions' and the stage's log groups, in days (a value CloudWatch accepts).",
    ),
    Key(
        "throttlingBurstLimit",
        "throttling_burst_limit",
        _int_in(0, 5000),
        "Stage default route throttling: burst (requests).",
    ),
    Key(
        "throttlingRateLimit",
        "throttling_rate_limit",
        _positive_float,
        "Stage default route throttling: steady rate (requests per second).",
    ),
    Key(
        "executionLoggingLevel",
        "execution_logging_level",
        _choice(EXECUTION_LOGGING_LEVELS),
        "Stage execution logging: OFF, ERROR or INFO, written to a log group the stack keeps for logRetentionDays.",
    ),
    Key(
        "tableBillingMode",
        "table_billing_mode",
        _choice(BILLING_MODES),
        "Billing of every table (and its indexes): PAY_PER_REQUEST (on-demand) or PROVISIONED.",
    ),
    Key(
        "tableReadCapacity",
        "table_read_capacity",
        _int_in(1, 40000),
        "Read capacity units; only with tableBillingMode PROVISIONED.",
    ),
    Key(
        "tableWriteCapacity",
        "table_write_capacity",
        _int_in(1, 40000),
        "Write capacity units; only with tableBillingMode PROVISIONED.",
    ),
    Key("pointInTimeRecovery", "point_in_time_recovery", _boolean, "Point-in-time recovery of every table."),
    Key(
        "tableKmsKeyArn",
        "table_kms_key_arn",
        _kms_key_arn,
        "Customer-managed KMS key for every table's encryption; unset uses the AWS-managed key.",
    ),
    Key(
        "auth",
        "auth",
        _auth,
        "Who may connect: none, or jwt (a Lambda authorizer checks a standard JWT on $connect: an OIDC issuer's "
        "when jwtIssuer is set, else HS256 with the secret config value jwtSecret).",
    ),
    Key(
        "jwtIssuer",
        "jwt_issuer",
        _url,
        "OIDC issuer whose RS256/ES256 tokens are accepted (the exact iss claim); unset uses jwtSecret (HS256).",
    ),
    Key(
        "jwtAudience",
        "jwt_audience",
        _pattern(r"[^\s]{1,256}", "1 to 256 characters without spaces"),
        "Audience tokens must name (aud): required with jwtIssuer, optional with jwtSecret.",
    ),
    Key(
        "jwksUrl",
        "jwks_url",
        _url,
        "The issuer's key set (JWKS); unset finds it by OIDC discovery at the issuer's "
        "/.well-known/openid-configuration.",
    ),
    Key(
        "jwtNameClaim",
        "jwt_name_claim",
        _pattern(r"[!-~]{1,128}", "a claim name (1 to 128 printable characters, no spaces)"),
        "Claim holding the display name; unset takes name, then preferred_username, then email.",
    ),
    Key(
        "customDomainName",
        "custom_domain_name",
        _pattern(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", "a lower-case DNS name"),
        "Optional custom domain for the WebSocket URL (needs certificateArn).",
    ),
    Key(
        "certificateArn",
        "certificate_arn",
        _pattern(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+", "an ACM certificate ARN"),
        "ACM certificate for customDomainName, in the stack's region.",
    ),
    Key(
        "hostedZoneId",
        "hosted_zone_id",
        _pattern(r"Z[A-Z0-9]{1,31}", "a Route 53 hosted zone id"),
        "Optional Route 53 hosted zone in which to create the custom domain's alias record.",
    ),
    Key(
        "alarmEmail",
        "alarm_email",
        _pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address"),
        "Optional e-mail address subscribed to the alarm topic.",
    ),
    Key(
        "alarmFunctionErrors",
        "alarm_function_errors",
        _int_in(1, 100000),
        "Alarm when a function reports at least this many errors in 5 minutes.",
    ),
    Key(
        "alarmFunctionThrottles",
        "alarm_function_throttles",
        _int_in(1, 100000),
        "Alarm when a function is throttled at least this many times in 5 minutes.",
    ),
    Key(
        "alarmApiErrors",
        "alarm_api_errors",
        _int_in(1, 100000),
        "Alarm when the API reports at least this many integration or execution errors in 5 minutes.",
    ),
    Key("tracing", "tracing", _boolean, "X-Ray active tracing on every function."),
    Key(
        "reservedConcurrency",
        "reserved_concurrency",
        _int_in(1, 1000),
        "Reserved concurrency of each function; unset leaves the account pool shared. Set it only once the "
        "region's Lambda concurrency quota has room for it (make preflight checks).",
    ),
    Key(
        "apiGatewayLoggingRole",
        "api_gateway_logging_role",
        _choice(LOGGING_ROLE_MODES),
        "API Gateway's account-level CloudWatch role, which every logging stage needs: auto creates it when the "
        "region has none (and keeps it on destroy); external never touches it.",
    ),
    Key(
        "permissionsBoundaryArn",
        "permissions_boundary_arn",
        _pattern(r"arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]+", "an IAM managed policy ARN"),
        "Optional permissions boundary set on every IAM role the stack creates (a deploy role may require it).",
    ),
)

SECRET_KEYS: tuple[str, ...] = (SECRET_KEY,)
"""Secret config values: read by the program with `require_secret`, never parsed into settings or logged."""


def parse_settings(values: Mapping[str, Any], stack: str) -> StackSettings:
    """Validate config values (keyed by bare name, e.g. `lambdaMemoryMb`) into settings.

    Unknown keys and combinations that AWS would reject raise `SettingsError` too, so a typo never passes silently.
    """
    known = {key.name: key for key in KEYS}
    if RETIRED_SECRET_KEY in values:
        raise SettingsError(f"{_key(RETIRED_SECRET_KEY)} is no longer read: {MIGRATION}")
    unknown = sorted(set(values) - set(known) - set(SECRET_KEYS))
    if unknown:
        raise SettingsError(
            f"{_key(unknown[0])} is not a setting of this program; known settings: {', '.join(sorted(known))}"
        )
    fields: dict[str, Any] = {}
    if values.get("stageName") is None:
        if not STAGE_NAME_PATTERN.fullmatch(stack):
            raise SettingsError(
                f"{_key('stageName')} is unset, so the stage would be named after the stack, but {stack!r} is not a "
                f"valid stage name (1 to 128 letters, digits, hyphens or underscores); set {_key('stageName')}"
            )
        fields["stage_name"] = stack
    for name, value in values.items():
        if value is None or name in SECRET_KEYS:
            continue
        key = known[name]
        fields[key.field] = key.parse(name, value)
    settings = StackSettings(**fields)
    _check_capacity(settings)
    _check_domain(settings)
    _check_jwt(settings)
    return settings


def _check_capacity(settings: StackSettings) -> None:
    capacity_given = settings.table_read_capacity is not None or settings.table_write_capacity is not None
    if settings.table_billing_mode == "PAY_PER_REQUEST" and capacity_given:
        name = "tableReadCapacity" if settings.table_read_capacity is not None else "tableWriteCapacity"
        raise SettingsError(
            f"{_key(name)} is set but tableBillingMode is PAY_PER_REQUEST (on-demand tables have no capacity); "
            f"remove it or set {_key('tableBillingMode')} to PROVISIONED"
        )
    if settings.table_billing_mode == "PROVISIONED" and not (
        settings.table_read_capacity is not None and settings.table_write_capacity is not None
    ):
        name = "tableReadCapacity" if settings.table_read_capacity is None else "tableWriteCapacity"
        raise SettingsError(f"{_key(name)} is required when {_key('tableBillingMode')} is PROVISIONED")


def _check_domain(settings: StackSettings) -> None:
    if settings.custom_domain_name is not None and settings.certificate_arn is None:
        raise SettingsError(f"{_key('certificateArn')} is required when {_key('customDomainName')} is set")
    for name, value in (("certificateArn", settings.certificate_arn), ("hostedZoneId", settings.hosted_zone_id)):
        if value is not None and settings.custom_domain_name is None:
            raise SettingsError(f"{_key(name)} is set but {_key('customDomainName')} is not; set both or neither")


def _check_jwt(settings: StackSettings) -> None:
    if settings.jwt_issuer is not None and settings.jwt_audience is None and settings.auth == "jwt":
        raise SettingsError(
            f"{_key('jwtAudience')} is required when {_key('jwtIssuer')} is set: without it any token the issuer "
            "signs for any application would be accepted"
        )
    if settings.jwks_url is not None and settings.jwt_issuer is None:
        raise SettingsError(f"{_key('jwksUrl')} is set but {_key('jwtIssuer')} is not; a key set needs its issuer")


def settings_from_stack_config(config: Mapping[str, Any], stack: str) -> StackSettings:
    """Settings from a `Pulumi.<stack>.yaml` `config:` mapping: keeps this project's keys, drops `aws:` and others."""
    prefix = f"{PROJECT}:"
    own = {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}
    return parse_settings(own, stack)
