"""Stack configuration: Pulumi.yaml in step with app.settings, the stack profiles, and every validation error."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from app import definition, settings_doc
from app.settings import KEYS, PROJECT, Key, StackSettings, settings_from_stack_config
from tests.infra.mocks import REPOSITORY, ProgramError, run_program

PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
DEFAULTS = {field.name: field.default for field in dataclasses.fields(StackSettings)}
PULUMI_TYPES = {int: "integer", bool: "boolean", str: "string", float: "string"}
"""Project config types for each Python type; decimals are strings, as Pulumi config has no decimal type."""

OPTIONAL = {key.name for key in KEYS if key.field == "stage_name" or DEFAULTS[key.field] is None}
"""Keys without a fixed default, which Pulumi.yaml must not declare (a declared key without default is required)."""

BAD_VALUES: dict[str, Any] = {
    "stageName": "live stage",
    "lambdaRuntime": "python3.8",
    "lambdaArchitecture": "sparc",
    "lambdaMemoryMb": -256,
    "broadcastMemoryMb": 10241,
    "lambdaTimeoutSeconds": -1,
    "maxMessageBytes": 64 * 1024,
    "broadcastMaxPostsPerSecond": 0,
    "broadcastShardSize": "many",
    "messageRatePerSecond": "fast",
    "messageBurst": 0,
    "maxRoomsPerConnection": 0,
    "historyLimit": 501,
    "historyRetentionDays": "a week",
    "presenceMaxMembers": 10001,
    "logRetentionDays": 10,
    "throttlingBurstLimit": -5,
    "throttlingRateLimit": -100,
    "executionLoggingLevel": "DEBUG",
    "tableBillingMode": "FREE",
    "tableReadCapacity": -1,
    "tableWriteCapacity": 0,
    "pointInTimeRecovery": "sometimes",
    "tableKmsKeyArn": "my-key",
    "auth": "password",
    "jwtIssuer": "ftp://id.example.com",
    "jwtAudience": "two words",
    "jwksUrl": "http://keys.example.com/",
    "jwtNameClaim": "",
    "customDomainName": "Chat Example",
    "certificateArn": "arn:aws:acm:certificate",
    "hostedZoneId": "zone-1",
    "alarmEmail": "nobody",
    "alarmFunctionErrors": 0,
    "alarmFunctionThrottles": -1,
    "alarmApiErrors": "many",
    "tracing": "yes",
    "reservedConcurrency": 0,
    "apiGatewayLoggingRole": "sometimes",
    "permissionsBoundaryArn": "arn:aws:iam::123456789012:role/not-a-policy",
}
"""A value each setting must refuse; a new setting without an entry here fails `test_every_setting_has_a_bad_value`."""


def declared() -> dict[str, dict[str, Any]]:
    config: dict[str, dict[str, Any]] = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    return config


def failure(stack: str, overrides: dict[str, Any]) -> ProgramError:
    with pytest.raises(ProgramError) as raised:
        run_program(stack, overrides)
    return raised.value


def assert_stopped_before_any_resource(error: ProgramError, key: str) -> None:
    assert isinstance(error.error, pulumi.RunError), f"{key}: the program raised {error.error!r}, not a RunError"
    message = str(error.error)
    assert f"{PROJECT}:{key}" in message, f"the message does not name {PROJECT}:{key}: {message}"
    assert "\n" not in message, f"{key}: the message is more than one line: {message!r}"
    assert error.resources == (), f"{key}: resources were registered before the error: {error.resources}"


# --- Pulumi.yaml and app.settings stay in step ---


@pytest.mark.parametrize("path", [settings_doc.PROJECT_FILE, settings_doc.README], ids=lambda path: path.name)
def test_generated_settings_are_current(path: Path) -> None:
    assert path.read_text() == settings_doc.generated()[path], (
        f"{path.name} differs from app/settings.py: run python -m app.settings_doc --write"
    )


def test_the_generator_reports_drift_and_rewrites_only_between_its_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project, readme = tmp_path / "Pulumi.yaml", tmp_path / "README.md"
    project.write_text(PROJECT_FILE.read_text().replace("default: 256", "default: 512"))
    readme.write_text(f"intro\n{settings_doc.README_BEGIN}\n| stale |\n{settings_doc.README_END}\noutro\n")
    monkeypatch.setattr(settings_doc, "PROJECT_FILE", project)
    monkeypatch.setattr(settings_doc, "README", readme)
    assert settings_doc.main([]) == 1, "a hand-edited default must be reported"
    report = capsys.readouterr().out
    assert "Pulumi.yaml is out of date" in report and "README.md is out of date" in report, report
    assert settings_doc.main(["--write"]) == 0 and settings_doc.main([]) == 0, "--write must make both current"
    assert yaml.safe_load(project.read_text())["config"]["lambdaMemoryMb"]["default"] == 256, "default restored"
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "| `lambdaMemoryMb` | `256` |" in text, text


def test_the_generator_refuses_a_file_without_its_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    monkeypatch.setattr(settings_doc, "README", readme)
    with pytest.raises(ValueError, match="markers"):
        settings_doc.generated()


def test_pulumi_yaml_declares_exactly_the_settings_with_a_default() -> None:
    assert set(declared()) == {key.name for key in KEYS} - OPTIONAL, (
        "Pulumi.yaml config keys differ from app.settings.KEYS that have a default"
    )


@pytest.mark.parametrize("key", [key for key in KEYS if key.name not in OPTIONAL], ids=lambda key: key.name)
def test_declared_type_description_and_default_match_the_settings(key: Key) -> None:
    declaration = declared()[key.name]
    default = DEFAULTS[key.field]
    assert declaration["type"] == PULUMI_TYPES[type(default)], f"Pulumi.yaml {key.name}: wrong type"
    assert declaration["description"] == key.description, f"Pulumi.yaml {key.name}: description differs from KEYS"
    assert key.parse(key.name, declaration["default"]) == default, (
        f"Pulumi.yaml {key.name}: default {declaration['default']!r} differs from StackSettings ({default!r})"
    )


def test_optional_settings_are_listed_in_the_pulumi_yaml_comment() -> None:
    comment = "\n".join(line for line in PROJECT_FILE.read_text().splitlines() if line.lstrip().startswith("#"))
    missing = sorted(name for name in OPTIONAL if name not in comment)
    assert not missing, f"optional settings not explained in Pulumi.yaml's comment: {missing}"


def test_project_defaults_alone_give_the_settings_defaults() -> None:
    run = run_program("defaults-only")
    stage = run.one("aws:apigatewayv2/stage:Stage", "websocket-stage")
    assert stage.inputs["name"] == "defaults-only", "the stage name does not default to the stack name"
    function = run.one("aws:lambda/function:Function", "who-function")
    assert function.inputs["memorySize"] == DEFAULTS["lambda_memory_mb"], f"{function}: memory is not the default"
    assert function.inputs["runtime"] == DEFAULTS["lambda_runtime"], f"{function}: runtime is not the default"


# --- stack profiles ---


def stack_settings(stack: str) -> StackSettings:
    config = yaml.safe_load(Path(REPOSITORY / f"Pulumi.{stack}.yaml").read_text())["config"]
    return settings_from_stack_config(config, stack)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_file_sets_a_region_and_valid_settings(stack: str) -> None:
    config = yaml.safe_load(Path(REPOSITORY / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert config.get("aws:region"), f"Pulumi.{stack}.yaml sets no aws:region"
    stack_settings(stack)


def test_prod_is_the_production_profile() -> None:
    dev, prod = stack_settings("dev"), stack_settings("prod")
    assert prod.log_retention_days >= 365 > dev.log_retention_days, "prod does not keep logs longer (>= 365 days)"
    assert prod.point_in_time_recovery and not dev.point_in_time_recovery, "PITR is not on in prod only"
    assert prod.throttling_burst_limit < dev.throttling_burst_limit, "prod burst throttling is not tighter"
    assert prod.throttling_rate_limit < dev.throttling_rate_limit, "prod rate throttling is not tighter"
    assert prod.tracing and not dev.tracing, "X-Ray tracing is not on in prod only"
    # Opt-in: a fresh account's quota is often 10, which leaves nothing to reserve (make preflight checks a value).
    assert prod.reserved_concurrency is None and dev.reserved_concurrency is None, "a profile reserves concurrency"
    assert prod.alarm_api_errors != DEFAULTS["alarm_api_errors"], "prod alarm thresholds are not its own"


# --- validation: one clear message naming the key, before any resource ---


KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b9d3e5c-1a2b-4c3d-8e9f-001122334455"


def test_a_kms_alias_is_refused_with_the_command_that_finds_its_key() -> None:
    """DynamoDB's DescribeTable reports `SSEDescription.KMSMasterKeyArn`, the key's ARN, whatever was passed, so an
    alias in `kms_key_arn` differs from the state on every refresh (the provider compares the ARN it reads back)."""
    error = failure("dev", {"tableKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:alias/chat"})
    assert_stopped_before_any_resource(error, "tableKmsKeyArn")
    assert "describe-key --region us-east-1 --key-id alias/chat" in str(error), f"no way to the key: {error}"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"customDomainName": "chat.example.com", "certificateArn": CERTIFICATE.replace("us-east-1", "eu-west-1")},
            "certificateArn",
        ),
        ({"tableKmsKeyArn": KEY_ARN.replace("us-east-1", "eu-west-1")}, "tableKmsKeyArn"),
    ],
    ids=["certificate", "kms-key"],
)
def test_an_arn_in_another_region_is_refused(overrides: dict[str, Any], key: str) -> None:
    """A regional custom domain (the only kind WebSocket APIs support) needs its ACM certificate in the API's
    region; a DynamoDB table takes a KMS key of its own region only."""
    error = failure("dev", overrides)
    assert_stopped_before_any_resource(error, key)
    assert "eu-west-1" in str(error) and "us-east-1" in str(error), f"the message names neither region: {error}"


def test_arns_in_the_stack_region_pass() -> None:
    run = run_program(
        "dev", {"customDomainName": "chat.example.com", "certificateArn": CERTIFICATE, "tableKmsKeyArn": KEY_ARN}
    )
    assert run.of_type("aws:apigatewayv2/domainName:DomainName"), "no domain name"


def test_every_setting_has_a_bad_value() -> None:
    assert set(BAD_VALUES) == {key.name for key in KEYS}, "BAD_VALUES must cover exactly app.settings.KEYS"


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_bad_value_stops_the_program_naming_the_key(key: str) -> None:
    assert_stopped_before_any_resource(failure("dev", {key: BAD_VALUES[key]}), key)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"tableReadCapacity": 5}, "tableReadCapacity"),
        ({"tableWriteCapacity": 5}, "tableWriteCapacity"),
        ({"tableBillingMode": "PROVISIONED", "tableWriteCapacity": 5}, "tableReadCapacity"),
        ({"tableBillingMode": "PROVISIONED", "tableReadCapacity": 5}, "tableWriteCapacity"),
    ],
    ids=["read-on-demand", "write-on-demand", "provisioned-without-read", "provisioned-without-write"],
)
def test_capacity_must_match_the_billing_mode(overrides: dict[str, Any], key: str) -> None:
    assert_stopped_before_any_resource(failure("dev", overrides), key)


def test_a_misspelt_key_is_reported_not_ignored() -> None:
    assert_stopped_before_any_resource(failure("dev", {"lambdaMemoryMB": 512}), "lambdaMemoryMB")


def test_a_stack_name_that_is_no_valid_stage_name_needs_stage_name() -> None:
    assert_stopped_before_any_resource(failure("feature.one", {}), "stageName")
    run = run_program("feature.one", {"stageName": "feature-one"})
    assert run.one("aws:apigatewayv2/stage:Stage", "websocket-stage").inputs["name"] == "feature-one", (
        "stageName does not name the stage"
    )


SECRET = "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="


def test_token_auth_without_its_secret_stops_the_program_naming_the_key() -> None:
    error = failure("dev", {"auth": "jwt"})
    assert_stopped_before_any_resource(error, "jwtSecret")
    assert "pulumi config set --secret jwtSecret" in str(error), f"the message says not how to fix it: {error}"


def test_a_short_token_secret_is_refused_without_repeating_it() -> None:
    error = failure("dev", {"auth": "jwt", "jwtSecret": "too-short-a-secret"})
    assert_stopped_before_any_resource(error, "jwtSecret")
    assert "must be at least 32 bytes" in str(error), f"unexpected message: {error}"
    assert "too-short-a-secret" not in str(error), "the error message repeats the secret"


def test_the_secret_is_neither_a_setting_nor_required_without_auth() -> None:
    run = run_program("dev", {"jwtSecret": SECRET})
    assert run.of_type("aws:apigatewayv2/authorizer:Authorizer") == [], "a secret alone turned auth on"
    assert SECRET not in str([resource.inputs for resource in run.resources]), "the unused secret reached a resource"


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_descriptions_name_no_function_and_no_issue(key: Key) -> None:
    # Descriptions are copied into Pulumi.yaml and the README: a function's name or an issue number goes stale there.
    words = set(re.findall(r"[\w$-]+", key.description.lower()))
    # Single words (connect, default, who, history) are plain English; compound names (send-message, join_room,
    # sendmessage) are the code's own.
    functions = (*definition.FUNCTIONS, definition.AUTHORIZER)
    code_names = {
        name for function in functions for name in (function.name, function.module) if "-" in name or "_" in name
    }
    english = {"join", "leave", "who", "history", "whisper"}
    named = sorted(words & (code_names | (set(definition.ACTIONS) - english)))
    assert not named, f"{key.name}: the description names functions {named}; describe what they do instead"
    assert not re.search(r"\bissue\b|#\d", key.description, re.IGNORECASE), f"{key.name}: an issue reference"


def test_the_retired_token_mode_is_refused_with_the_way_to_migrate() -> None:
    for values in ({"auth": "token"}, {"auth": "jwt", "authTokenSecret": SECRET}):
        error = failure("dev", values)
        assert "auth to jwt" in str(error) and "jwtSecret" in str(error), f"{values}: no migration in {error}"
        assert SECRET not in str(error), "the error message repeats the old secret"


def test_an_issuer_with_a_secret_is_refused() -> None:
    values = {"auth": "jwt", "jwtIssuer": "https://id.example.com/", "jwtAudience": "chat", "jwtSecret": SECRET}
    assert_stopped_before_any_resource(failure("dev", values), "jwtSecret")


def test_issuer_mode_deploys_without_a_secret() -> None:
    run = run_program("dev", {"auth": "jwt", "jwtIssuer": "https://id.example.com/", "jwtAudience": "chat"})
    secrets = [p for p in run.of_type("aws:ssm/parameter:Parameter") if p.inputs["type"] == "SecureString"]
    assert secrets == [], "issuer mode stored a secret"
    assert len(run.of_type("aws:apigatewayv2/authorizer:Authorizer")) == 1, "issuer mode built no authorizer"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"auth": "jwt", "jwtIssuer": "https://id.example.com/"}, "jwtAudience"),
        ({"auth": "jwt", "jwtIssuer": "http://id.example.com/", "jwtAudience": "chat"}, "jwtIssuer"),
        ({"auth": "jwt", "jwksUrl": "https://id.example.com/keys", "jwtSecret": SECRET}, "jwksUrl"),
        ({"auth": "jwt", "jwtSecret": SECRET, "jwtNameClaim": "has space"}, "jwtNameClaim"),
    ],
    ids=["issuer-without-audience", "plain-http-issuer", "jwks-without-issuer", "bad-name-claim"],
)
def test_jwt_settings_are_validated(values: dict[str, str], key: str) -> None:
    assert_stopped_before_any_resource(failure("dev", values), key)
