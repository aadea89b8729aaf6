"""The JWT authorizer component under mocks, per mode: the secret's parameter and grant, function, authorizer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
import pytest

from app.definition import AUTHORIZER
from app.settings import StackSettings
from handlers import environment, tokens
from infra import authorization
from infra.authorization import TokenAuthorizer, TokenAuthorizerArgs, build_token_authorizer
from tests.hardening.harness import PARAMETER_VERSION, REGION, ComponentRun, ComponentsError, run_components
from tests.infra.mocks import ACCOUNT_ID, RegisteredResource

API_ID = "a1b2c3d4e5"
EXECUTION_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}"
SECRET = "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="
SETTINGS = StackSettings(stage_name="dev", auth="jwt")
ISSUER_SETTINGS = StackSettings(
    stage_name="dev", auth="jwt", jwt_issuer="https://id.example.com/", jwt_audience="chat", jwt_name_claim="nickname"
)
CODE_HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

PARAMETER = "aws:ssm/parameter:Parameter"
FUNCTION = "aws:lambda/function:Function"
AUTHORIZER_TYPE = "aws:apigatewayv2/authorizer:Authorizer"
PERMISSION = "aws:lambda/permission:Permission"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ROLE = "aws:iam/role:Role"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
CHAT_FUNCTION = "chat:index:ChatFunction"
FUNCTION_RESOURCES = frozenset({FUNCTION, ROLE, ROLE_POLICY, ATTACHMENT, LOG_GROUP})
"""What the authorizer's function is made of (`infra.function.ChatFunction`)."""
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
"""How Pulumi marks a secret value on the wire."""


def _code() -> pulumi.Archive:
    return pulumi.AssetArchive({"handlers/authorizer.py": pulumi.StringAsset("def handler(event, context): ...\n")})


def _build(settings: StackSettings = SETTINGS, secret: str | None = SECRET) -> ComponentRun:
    def build() -> dict[str, Any]:
        component = TokenAuthorizer(
            "auth",
            TokenAuthorizerArgs(
                api_id=API_ID,
                execution_arn=EXECUTION_ARN,
                secret=pulumi.Output.secret(secret) if secret is not None else None,
                code=_code(),
                code_hash=CODE_HASH,
                settings=settings,
            ),
        )
        return {
            "authorizer_id": component.authorizer_id,
            "authorization_type": component.authorization_type,
            "function_name": component.function_name,
            "parameter_name": component.parameter_name,
        }

    return run_components(build)


@pytest.fixture(scope="module")
def run() -> ComponentRun:
    return _build()


def _function(run: ComponentRun) -> RegisteredResource:
    return run.one(FUNCTION, "auth-function")


def test_authorizer_is_a_request_authorizer_invoking_the_function(run: ComponentRun) -> None:
    authorizer = run.one(AUTHORIZER_TYPE, "auth-authorizer")
    function = _function(run)
    assert authorizer.inputs["apiId"] == API_ID, f"{authorizer} is attached to API {authorizer.inputs['apiId']}"
    assert authorizer.inputs["authorizerType"] == "REQUEST", f"{authorizer} type {authorizer.inputs['authorizerType']}"
    assert authorizer.inputs["authorizerUri"] == function.outputs["invokeArn"], (
        f"{authorizer} invokes {authorizer.inputs['authorizerUri']}, not {function}'s invoke ARN"
    )
    for http_only in ("authorizerPayloadFormatVersion", "enableSimpleResponses", "authorizerResultTtlInSeconds"):
        assert http_only not in authorizer.inputs, f"{authorizer} sets {http_only}, which only HTTP APIs accept"


def test_authorizer_lists_no_identity_source(run: ComponentRun) -> None:
    authorizer = run.one(AUTHORIZER_TYPE, "auth-authorizer")
    # Any listed source that is missing makes API Gateway answer 401 before the function runs: with ?token= and
    # the Authorization header both accepted, listing either one would shut out the clients using the other.
    assert not authorizer.inputs.get("identitySources"), (
        f"{authorizer} lists identity sources {authorizer.inputs.get('identitySources')}; API Gateway would refuse "
        "requests lacking any of them before the authorizer could accept the other form"
    )


def test_route_settings_for_connect(run: ComponentRun) -> None:
    authorizer = run.one(AUTHORIZER_TYPE, "auth-authorizer")
    assert run.value["authorization_type"] == "CUSTOM", f"$connect authorization type {run.value['authorization_type']}"
    assert run.value["authorizer_id"] == authorizer.id, f"authorizer_id is not {authorizer}'s id"


def test_secret_is_a_secure_string_parameter_marked_secret(run: ComponentRun) -> None:
    parameter = run.one(PARAMETER, "auth-secret")
    assert parameter.inputs["type"] == "SecureString", f"{parameter} is a {parameter.inputs['type']}"
    value = parameter.inputs["value"]
    assert isinstance(value, dict) and SECRET_SIGNATURE in value, f"{parameter}'s value is not a Pulumi secret"
    assert value["value"] == SECRET, f"{parameter} does not hold the configured secret"
    assert "name" not in parameter.inputs, f"{parameter} has a hard-coded name; auto-naming keeps stacks apart"
    assert run.value["parameter_name"] == parameter.outputs["name"], "parameter_name is not the parameter's name"


def test_role_may_read_exactly_that_parameter(run: ComponentRun) -> None:
    parameter = run.one(PARAMETER, "auth-secret")
    role = run.one(ROLE, "auth-role")
    policies = [policy for policy in run.of_type(ROLE_POLICY) if policy.inputs["role"] == role.outputs["name"]]
    assert len(policies) == 1, f"{role} has {len(policies)} inline policies, expected the one reading the secret"
    document = policies[0].policy()
    statements = document["Statement"]
    assert len(statements) == 1, f"{policies[0]} has {len(statements)} statements: {statements}"
    statement = statements[0]
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert statement["Effect"] == "Allow" and actions == ["ssm:GetParameter"], (
        f"{policies[0]} grants {statement['Effect']} {actions}; only ssm:GetParameter is needed"
    )
    assert resources == [parameter.outputs["arn"]], f"{policies[0]} covers {resources}, not just {parameter}"
    assert "*" not in str(document), f"{policies[0]} contains a wildcard: {document}"
    trust = role.policy("assumeRolePolicy")["Statement"]
    assert [entry["Principal"] for entry in trust] == [{"Service": "lambda.amazonaws.com"}], f"{role} trust: {trust}"


def test_role_has_basic_execution_and_no_tracing_when_off(run: ComponentRun) -> None:
    attached = {attachment.inputs["policyArn"] for attachment in run.of_type(ATTACHMENT)}
    assert attached == {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}, (
        f"the authorizer's role has managed policies {attached}"
    )


def test_function_runs_the_authorizer_with_only_the_parameter_name(run: ComponentRun) -> None:
    function = _function(run)
    parameter = run.one(PARAMETER, "auth-secret")
    log_group = run.one(LOG_GROUP, "auth-logs")
    inputs = function.inputs
    assert inputs["handler"] == AUTHORIZER.handler == "handlers.authorizer.handler", f"{function} handler"
    assert inputs["environment"]["variables"] == {environment.TOKEN_SECRET_PARAMETER: parameter.outputs["name"]}, (
        f"{function}'s environment is {inputs['environment']['variables']}; it must hold the parameter name only"
    )
    assert SECRET not in str(inputs), f"the signing secret appears in {function}'s inputs"
    assert inputs["runtime"] == SETTINGS.lambda_runtime and inputs["architectures"] == [SETTINGS.lambda_architecture]
    # The authorizer only checks an HMAC: the ordinary memory size, not the broadcasting function's.
    assert inputs["memorySize"] == SETTINGS.lambda_memory_mb != SETTINGS.broadcast_memory_mb, f"{function} memory"
    assert inputs["timeout"] == SETTINGS.lambda_timeout_seconds, f"{function} timeout {inputs['timeout']}"
    assert inputs["role"] == run.one(ROLE, "auth-role").outputs["arn"], f"{function} runs as another role"
    assert inputs["sourceCodeHash"] == CODE_HASH, f"{function} does not pin its code hash"
    assert inputs["loggingConfig"]["logGroup"] == log_group.outputs["name"], f"{function} logs elsewhere"
    assert log_group.inputs["retentionInDays"] == SETTINGS.log_retention_days, f"{log_group} retention"
    # PassThrough is spelled out: the provider keeps the last mode when the block is left out.
    assert inputs["tracingConfig"] == {"mode": "PassThrough"}, f"{function} is traced although tracing is off"
    assert "reservedConcurrentExecutions" not in inputs, f"{function} reserves concurrency although it is unset"
    for dependency in (log_group, *run.of_type(ROLE_POLICY), *run.of_type(ATTACHMENT)):
        assert dependency.urn in function.dependencies, f"{function} may run before {dependency} exists"


def test_a_new_secret_changes_the_function_configuration(run: ComponentRun) -> None:
    # Warm containers cache the secret; only a configuration change retires them after a rotation.
    description = _function(run).inputs["description"]
    assert f"HS256 secret version {PARAMETER_VERSION})" in description, (
        f"the authorizer function's description {description!r} does not follow the parameter's version"
    )


def test_only_this_apis_authorizer_may_invoke_the_function(run: ComponentRun) -> None:
    permission = run.one(PERMISSION, "auth-permission")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com", f"{permission} principal"
    assert permission.inputs["action"] == "lambda:InvokeFunction", f"{permission} action"
    assert permission.inputs["function"] == _function(run).outputs["name"], f"{permission} is on another function"
    expected = f"{EXECUTION_ARN}/authorizers/{run.value['authorizer_id']}"
    assert permission.inputs["sourceArn"] == expected, f"{permission} source ARN {permission.inputs['sourceArn']}"


def test_every_resource_is_a_child_of_the_component(run: ComponentRun) -> None:
    component = run.one("chat:index:TokenAuthorizer", "auth")
    function = run.one(CHAT_FUNCTION, "auth")
    assert function.parent == component.urn, f"{function} is not parented to {component}"
    for resource in run.resources:
        if resource is component or resource is function:
            continue
        # The function's own resources belong to the ChatFunction the component builds; the rest to the component.
        owner = function if resource.type in FUNCTION_RESOURCES else component
        assert resource.parent == owner.urn, f"{resource} is not parented to {owner}"


def test_tracing_and_reserved_concurrency_follow_the_settings() -> None:
    run = _build(dataclasses.replace(SETTINGS, tracing=True, reserved_concurrency=7))
    function = _function(run)
    assert function.inputs["tracingConfig"] == {"mode": "Active"}, f"{function} is not actively traced"
    assert function.inputs["reservedConcurrentExecutions"] == 7, f"{function} reserved concurrency"
    tracing = run.one(ROLE_POLICY, "auth-tracing")
    assert tracing.inputs["role"] == run.one(ROLE, "auth-role").outputs["name"], f"{tracing} is on another role"
    # X-Ray's write actions have no resource-level permissions: `*` is the narrowest resource there is.
    assert tracing.policy()["Statement"] == [
        {
            "Sid": "WriteTraces",
            "Effect": "Allow",
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Resource": "*",
        }
    ], f"{tracing} grants {tracing.policy()['Statement']}"
    assert tracing.urn in function.dependencies, f"{function} may run before it may write traces"
    attached = {attachment.inputs["policyArn"] for attachment in run.of_type(ATTACHMENT)}
    assert attached == {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}, (
        f"tracing on attaches {attached}; the inline grant replaces AWSXRayDaemonWriteAccess and its sampling reads"
    )


def test_short_secret_fails_naming_the_key() -> None:
    with pytest.raises(ComponentsError, match="jwtSecret must be at least 32 bytes") as caught:
        _build(secret="too-short")
    assert "too-short" not in str(caught.value), "the error message repeats the secret"


def test_build_returns_nothing_when_auth_is_off() -> None:
    def build() -> Any:
        return build_token_authorizer(
            "auth",
            settings=StackSettings(stage_name="dev"),
            secret=None,
            api_id=API_ID,
            execution_arn=EXECUTION_ARN,
            code=_code(),
            code_hash=None,
        )

    run = run_components(build)
    assert run.value is None and run.resources == (), f"auth none registered {[str(r) for r in run.resources]}"


def test_build_requires_the_secret_when_auth_is_on() -> None:
    with pytest.raises(pulumi.RunError, match="websocket-chat:jwtSecret is required"):
        build_token_authorizer(
            "auth",
            settings=SETTINGS,
            secret=None,
            api_id=API_ID,
            execution_arn=EXECUTION_ARN,
            code=_code(),
            code_hash=None,
        )


def test_build_makes_the_component_when_auth_is_on() -> None:
    def build() -> Any:
        component = build_token_authorizer(
            "auth",
            settings=SETTINGS,
            secret=pulumi.Output.secret(SECRET),
            api_id=API_ID,
            execution_arn=EXECUTION_ARN,
            code=_code(),
            code_hash=None,
        )
        assert component is not None, "auth jwt built no authorizer"
        return component.authorizer_id

    run = run_components(build)
    assert run.value == run.one(AUTHORIZER_TYPE).id, "the built component does not expose its authorizer"
    assert "sourceCodeHash" not in run.one(FUNCTION).inputs, "a code hash was set although none was given"


def test_issuer_mode_has_no_secret_no_parameter_and_no_grant() -> None:
    run = _build(ISSUER_SETTINGS, secret=None)
    assert run.of_type(PARAMETER) == [], f"issuer mode stored a secret: {[str(r) for r in run.of_type(PARAMETER)]}"
    policies = [policy for policy in run.of_type(ROLE_POLICY) if "ssm" in json.dumps(policy.inputs).lower()]
    assert policies == [], f"issuer mode grants SSM reads: {[str(policy) for policy in policies]}"
    function = _function(run)
    assert function.inputs["environment"]["variables"] == {
        environment.JWT_ISSUER: "https://id.example.com/",
        environment.JWT_AUDIENCE: "chat",
        environment.JWT_NAME_CLAIM: "nickname",
    }, f"{function}'s environment is {function.inputs['environment']['variables']}"
    assert run.value["parameter_name"] is None, "issuer mode exposes a parameter name"
    assert "id.example.com" in function.inputs["description"], f"{function} description names not the issuer"


def test_issuer_mode_passes_the_jwks_url() -> None:
    run = _build(dataclasses.replace(ISSUER_SETTINGS, jwks_url="https://id.example.com/keys"), secret=None)
    variables = _function(run).inputs["environment"]["variables"]
    assert variables[environment.JWKS_URL] == "https://id.example.com/keys", f"JWKS_URL missing from {variables}"


def test_secret_mode_environment_adds_the_audience_when_set() -> None:
    run = _build(dataclasses.replace(SETTINGS, jwt_audience="chat"))
    variables = _function(run).inputs["environment"]["variables"]
    parameter = run.one(PARAMETER, "auth-secret")
    expected = {environment.JWT_AUDIENCE: "chat", environment.TOKEN_SECRET_PARAMETER: parameter.outputs["name"]}
    assert variables == expected, f"secret mode environment {variables}"


def test_the_programs_minimum_secret_length_is_the_verifiers() -> None:
    assert authorization.MIN_SECRET_BYTES == tokens.MIN_SECRET_BYTES, "two minimum secret lengths"
