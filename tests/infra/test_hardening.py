"""The hardening features as the whole program deploys them from config: the token authorizer on
`$connect`, the custom domain, alarms and dashboard, tracing and reserved concurrency, and the policy pack's verdict.

The components are tested on their own in `tests/hardening/`; these tests run the real `__main__.py` under mocks and
check the wiring: which resource points at which, what the stage waits for, the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import botocore.session
import pulumi
import pytest

from app import definition
from handlers import environment
from infra.api import WebSocketApi
from infra.archive import SOURCE_ROOT, build_archive, content_hash
from infra.routes import LambdaRoute, LambdaRouteArgs
from infra.wheels import wheel_directory
from policy.rules import STACK_RULES, StackResource, violations
from tests.infra.mocks import (
    PARAMETER_VERSION,
    REGIONAL_ZONE_ID,
    ProgramError,
    ProgramRun,
    RegisteredResource,
    run_program,
    shared_run,
)

SECRET = "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="
AUTH_ON = {"auth": "jwt", "jwtSecret": SECRET}
DOMAIN = "chat.example.com"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b9d3e5c-1a2b-4c3d-8e9f-001122334455"
ZONE = "Z0123456789ABCDEFGHIJ"
DOMAIN_ON = {"customDomainName": DOMAIN, "certificateArn": CERTIFICATE}
EVERYTHING_ON = {**AUTH_ON, **DOMAIN_ON, "hostedZoneId": ZONE, "alarmEmail": "ops@example.com"}

API = "aws:apigatewayv2/api:Api"
STAGE = "aws:apigatewayv2/stage:Stage"
ROUTE = "aws:apigatewayv2/route:Route"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
PARAMETER = "aws:ssm/parameter:Parameter"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
DOMAIN_NAME = "aws:apigatewayv2/domainName:DomainName"
MAPPING = "aws:apigatewayv2/apiMapping:ApiMapping"
RECORD = "aws:route53/record:Record"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
"""How Pulumi marks a secret value on the wire."""

ALL_FUNCTIONS = (*definition.FUNCTIONS, definition.AUTHORIZER)


@pytest.fixture(scope="module")
def auth_run() -> ProgramRun:
    """Dev with tokens on $connect."""
    return shared_run("dev", AUTH_ON)


@pytest.fixture(scope="module")
def everything_run() -> ProgramRun:
    """Prod with every optional feature on as well."""
    return shared_run("prod", EVERYTHING_ON)


def api(run: ProgramRun) -> RegisteredResource:
    return run.one(API, "websocket-api")


def route(run: ProgramRun, key: str) -> RegisteredResource:
    return run.one(ROUTE, f"{definition.route(key).logical_name}-route")


def function_names(run: ProgramRun) -> dict[str, str]:
    """Definition name -> deployed function name, for every function the run deployed."""
    deployed = {function.name: function.outputs["name"] for function in run.of_type(FUNCTION)}
    return {f.name: deployed[f"{f.name}-function"] for f in ALL_FUNCTIONS if f"{f.name}-function" in deployed}


# --- who may connect ---


def test_auth_off_builds_no_authorizer_and_leaves_connect_open(dev_run: ProgramRun) -> None:
    assert dev_run.of_type(AUTHORIZER) == [], "auth none registered an authorizer"
    secrets = [p for p in dev_run.of_type(PARAMETER) if p.inputs["type"] == "SecureString"]
    assert secrets == [], "auth none stored a signing secret"
    assert "authorizer" not in function_names(dev_run), "auth none deployed the authorizer function"
    connect = route(dev_run, "$connect")
    assert connect.inputs["authorizationType"] == "NONE", f"{connect}: {connect.inputs['authorizationType']}"
    assert "authorizerId" not in connect.inputs, f"{connect}: names an authorizer although auth is off"


def test_the_api_model_allows_a_request_authorizer_without_identity_sources_or_cache() -> None:
    """What the authorizer relies on, as botocore's `apigatewayv2` model states it (docs/hardening.md): identity
    sources are optional for REQUEST authorizers ("none" reaches AWS as the empty list the provider sends for the
    model's required member), and the result cache is an HTTP API feature."""
    model = botocore.session.get_session().get_service_model("apigatewayv2")
    request = model.operation_model("CreateAuthorizer").input_shape
    assert request is not None, "CreateAuthorizer takes no input"
    members = request.members
    assert "For a REQUEST authorizer, this is optional" in members["IdentitySource"].documentation, "sources required"
    ttl = members["AuthorizerResultTtlInSeconds"].documentation
    assert "Supported only for HTTP API Lambda authorizers" in ttl, f"WebSocket authorizers may cache now: {ttl}"


def test_auth_on_guards_connect_with_a_request_authorizer(auth_run: ProgramRun) -> None:
    authorizer = auth_run.one(AUTHORIZER, "authorizer-authorizer")
    function = auth_run.one(FUNCTION, "authorizer-function")
    assert authorizer.inputs["apiId"] == api(auth_run).id, f"{authorizer}: on another API"
    assert authorizer.inputs["authorizerType"] == "REQUEST", f"{authorizer}: {authorizer.inputs['authorizerType']}"
    assert authorizer.inputs["authorizerUri"] == function.outputs["invokeArn"], f"{authorizer}: invokes another"
    # None, as docs/hardening.md explains: listed sources are all required, and the token may come either way.
    assert not authorizer.inputs.get("identitySources"), f"{authorizer}: identity sources {authorizer.inputs}"
    connect = route(auth_run, "$connect")
    assert connect.inputs["authorizationType"] == "CUSTOM", f"{connect}: not guarded"
    assert connect.inputs["authorizerId"] == authorizer.id, f"{connect}: guarded by {connect.inputs['authorizerId']}"
    for other in auth_run.of_type(ROUTE):
        if other is not connect:
            assert other.inputs["authorizationType"] == "NONE", f"{other}: authorizers belong on $connect only"
            assert "authorizerId" not in other.inputs, f"{other}: names an authorizer"


def test_the_secret_is_a_secure_string_only_the_authorizer_may_read(auth_run: ProgramRun) -> None:
    parameter = auth_run.one(PARAMETER, "authorizer-secret")
    assert parameter.inputs["type"] == "SecureString", f"{parameter}: type {parameter.inputs['type']}"
    value = parameter.inputs["value"]
    assert isinstance(value, dict) and SECRET_SIGNATURE in value, f"{parameter}: value not marked secret"
    assert value["value"] == SECRET, f"{parameter}: does not hold jwtSecret"
    role = auth_run.one(ROLE, "authorizer-role")
    policies = [policy for policy in auth_run.of_type(ROLE_POLICY) if policy.inputs["role"] == role.outputs["name"]]
    assert [policy.name for policy in policies] == ["authorizer-policy"], f"{role}: inline policies {policies}"
    statements = json.loads(policies[0].inputs["policy"])["Statement"]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", "ssm:GetParameter", parameter.outputs["arn"])
    ], f"{policies[0]}: {statements}"
    attached = [a.inputs["policyArn"] for a in auth_run.of_type(ATTACHMENT) if a.inputs["role"] == role.outputs["name"]]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"], f"{role}: {attached}"
    other_documents = [p.inputs["policy"] for p in auth_run.of_type(ROLE_POLICY) if p not in policies]
    assert not any("ssm:" in document for document in other_documents), "another role may read SSM parameters"
    for resource in auth_run.resources:
        if resource is not parameter:
            assert SECRET not in json.dumps(resource.inputs, default=str), f"{resource}: holds the secret"


def test_the_authorizer_function_runs_its_archive_with_the_parameter_name(auth_run: ProgramRun) -> None:
    function = auth_run.one(FUNCTION, "authorizer-function")
    parameter = auth_run.one(PARAMETER, "authorizer-secret")
    assert function.inputs["handler"] == definition.AUTHORIZER.handler, f"{function}: handler"
    assert function.inputs["environment"]["variables"] == {
        environment.TOKEN_SECRET_PARAMETER: parameter.outputs["name"]
    }, f"{function}: environment {function.inputs['environment']}"
    code = function.inputs["code"]
    assert isinstance(code, pulumi.FileArchive), f"{function}: code is {code!r}, not the zip file"
    assert Path(code.path) == Path("build", "authorizer-3.13-arm64.zip"), f"{function}: archive path {code.path}"
    wheels = wheel_directory(definition.AUTHORIZER, "python3.13", "arm64")
    expected = build_archive(definition.AUTHORIZER, wheels=wheels)
    assert (SOURCE_ROOT / code.path).read_bytes() == expected, f"{function}: zip on disk differs from build_archive"
    assert function.inputs["sourceCodeHash"] == content_hash(definition.AUTHORIZER, wheels=wheels), (
        f"{function}: sourceCodeHash is not the hash of the archive's contents"
    )
    assert f"HS256 secret version {PARAMETER_VERSION})" in function.inputs["description"], (
        f"{function}: description does not follow the parameter's version, so a rotation keeps warm containers"
    )


def test_only_this_apis_authorizer_may_invoke_the_authorizer(auth_run: ProgramRun) -> None:
    permission = auth_run.one(PERMISSION, "authorizer-permission")
    authorizer = auth_run.one(AUTHORIZER, "authorizer-authorizer")
    expected = f"{api(auth_run).outputs['executionArn']}/authorizers/{authorizer.id}"
    assert permission.inputs["sourceArn"] == expected, f"{permission}: source ARN {permission.inputs['sourceArn']}"
    assert permission.inputs["principal"] == "apigateway.amazonaws.com", f"{permission}: principal"
    assert permission.inputs["function"] == auth_run.one(FUNCTION, "authorizer-function").outputs["name"], (
        f"{permission}: on another function"
    )


def test_the_stage_waits_for_the_authorizer_and_its_permission(auth_run: ProgramRun) -> None:
    """The stage's first automatic deployment is taken when it is created: the authorizer must be invocable by then."""
    stage = auth_run.one(STAGE, "websocket-stage")
    authorizer = auth_run.one(AUTHORIZER, "authorizer-authorizer")
    for needed in (authorizer, auth_run.one(PERMISSION, "authorizer-permission")):
        assert needed.urn in stage.dependencies, f"{stage}: may go live before {needed}"


# --- your own domain ---


def test_without_a_domain_nothing_is_built(dev_run: ProgramRun) -> None:
    for type_token in (DOMAIN_NAME, MAPPING, RECORD):
        assert dev_run.of_type(type_token) == [], f"no domain configured, yet a {type_token} was registered"
    assert "customDomainTarget" not in dev_run.outputs, "customDomainTarget exported without a domain"


def test_a_custom_domain_serves_the_stage_at_its_root(dev_run: ProgramRun) -> None:
    run = shared_run("dev", DOMAIN_ON)
    domain = run.one(DOMAIN_NAME, "websocket-domain")
    mapping = run.one(MAPPING, "websocket-mapping")
    stage = run.one(STAGE, "websocket-stage")
    configuration = domain.inputs["domainNameConfiguration"]
    assert domain.inputs["domainName"] == DOMAIN, f"{domain}: serves {domain.inputs['domainName']}"
    assert (configuration["certificateArn"], configuration["endpointType"], configuration["securityPolicy"]) == (
        CERTIFICATE,
        "REGIONAL",
        "TLS_1_2",
    ), f"{domain}: configuration {configuration}"
    assert mapping.inputs["apiId"] == api(run).id, f"{mapping}: maps another API"
    assert mapping.inputs["stage"] == "dev" and stage.urn in mapping.dependencies, f"{mapping}: not the stage"
    assert not mapping.inputs.get("apiMappingKey"), f"{mapping}: has a path, so the URL would need one"
    assert run.of_type(RECORD) == [], "a DNS record without hostedZoneId"
    # An API mapping with an empty key serves the stage at the domain's root: no stage segment in the URL.
    assert run.outputs["wssUrl"] == f"wss://{DOMAIN}", f"wssUrl {run.outputs['wssUrl']}"
    assert run.outputs["callbackUrl"] == dev_run.outputs["callbackUrl"], "callbackUrl left the execute-api endpoint"
    assert run.outputs["customDomainTarget"] == domain.outputs["domainNameConfiguration"]["targetDomainName"], (
        f"customDomainTarget {run.outputs['customDomainTarget']} is not the domain's regional target"
    )
    for function in definition.FUNCTIONS:
        variables = run.one(FUNCTION, f"{function.name}-function").inputs["environment"]["variables"]
        if environment.ENDPOINT_URL in variables:
            assert variables[environment.ENDPOINT_URL] == dev_run.outputs["callbackUrl"], (
                f"{function.name}: posts through {variables[environment.ENDPOINT_URL]}, not execute-api"
            )


def test_a_hosted_zone_gets_an_alias_record() -> None:
    run = run_program("dev", {**DOMAIN_ON, "hostedZoneId": ZONE})
    record = run.one(RECORD, "websocket-record")
    target = run.one(DOMAIN_NAME, "websocket-domain").outputs["domainNameConfiguration"]["targetDomainName"]
    assert (record.inputs["zoneId"], record.inputs["name"], record.inputs["type"]) == (ZONE, DOMAIN, "A"), (
        f"{record}: {record.inputs}"
    )
    assert record.inputs["aliases"] == [{"name": target, "zoneId": REGIONAL_ZONE_ID, "evaluateTargetHealth": False}], (
        f"{record}: aliases {record.inputs['aliases']}"
    )
    assert run.outputs["wssUrl"] == f"wss://{DOMAIN}", f"wssUrl {run.outputs['wssUrl']}"


# --- knowing when it breaks ---


def alarms(run: ProgramRun, namespace: str, metric: str) -> list[RegisteredResource]:
    return [
        alarm
        for alarm in run.of_type(ALARM)
        if alarm.inputs["namespace"] == namespace and alarm.inputs["metricName"] == metric
    ]


@pytest.mark.parametrize(
    ("stack", "overrides", "thresholds"),
    [
        ("dev", {}, {"api": 5, "Errors": 1, "Throttles": 1}),
        ("prod", {}, {"api": 10, "Errors": 3, "Throttles": 1}),
        (
            "dev",
            {"alarmApiErrors": 7, "alarmFunctionErrors": 4, "alarmFunctionThrottles": 2},
            {"api": 7, "Errors": 4, "Throttles": 2},
        ),
    ],
    ids=["dev", "prod", "overrides"],
)
def test_alarms_watch_the_stage_and_every_function_with_thresholds_from_config(
    stack: str, overrides: dict[str, Any], thresholds: dict[str, int]
) -> None:
    run = shared_run(stack, overrides)
    topic = run.one(TOPIC, "monitoring-alarms").outputs["arn"]
    for metric in ("IntegrationError", "ExecutionError"):
        found = alarms(run, "AWS/ApiGateway", metric)
        assert len(found) == 1, f"{stack}: {len(found)} alarms on AWS/ApiGateway {metric}"
        assert found[0].inputs["dimensions"] == {"ApiId": api(run).id, "Stage": stack}, f"{found[0]}: dimensions"
        assert found[0].inputs["threshold"] == thresholds["api"], f"{found[0]}: {found[0].inputs['threshold']}"
    for metric in ("Errors", "Throttles"):
        found = alarms(run, "AWS/Lambda", metric)
        watched = sorted(alarm.inputs["dimensions"]["FunctionName"] for alarm in found)
        assert watched == sorted(function_names(run).values()), f"{stack}: AWS/Lambda {metric} watches {watched}"
        for alarm in found:
            assert alarm.inputs["threshold"] == thresholds[metric], f"{alarm}: threshold {alarm.inputs['threshold']}"
    for alarm in run.of_type(ALARM):
        assert alarm.inputs["alarmActions"] == [topic] == alarm.inputs["okActions"], f"{alarm}: notifies elsewhere"
        assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold", f"{alarm}: comparison"
        assert (alarm.inputs["statistic"], alarm.inputs["period"]) == ("Sum", 300), f"{alarm}: not a 5-minute sum"
    assert run.of_type(SUBSCRIPTION) == [], f"{stack}: an e-mail subscription without alarmEmail"


def test_the_authorizer_is_watched_too(auth_run: ProgramRun) -> None:
    name = auth_run.one(FUNCTION, "authorizer-function").outputs["name"]
    for metric in ("Errors", "Throttles"):
        watched = {alarm.inputs["dimensions"]["FunctionName"] for alarm in alarms(auth_run, "AWS/Lambda", metric)}
        assert name in watched, f"no AWS/Lambda {metric} alarm on the authorizer {name}"


def test_alarm_email_subscribes_to_the_topic() -> None:
    run = run_program("dev", {"alarmEmail": "ops@example.com"})
    subscription = run.one(SUBSCRIPTION, "monitoring-alarm-email")
    assert subscription.inputs["topic"] == run.one(TOPIC, "monitoring-alarms").outputs["arn"], f"{subscription}: topic"
    assert (subscription.inputs["protocol"], subscription.inputs["endpoint"]) == ("email", "ops@example.com"), (
        f"{subscription}: {subscription.inputs}"
    )


def test_dashboard_shows_the_stage_and_every_function_and_its_url_is_exported(auth_run: ProgramRun) -> None:
    dashboard = auth_run.one(DASHBOARD, "monitoring-dashboard")
    name = f"monitoring-{api(auth_run).id}-dev"
    assert dashboard.inputs["dashboardName"] == name, f"{dashboard}: named {dashboard.inputs['dashboardName']}"
    body = json.loads(dashboard.inputs["dashboardBody"])
    widgets = {widget["properties"]["title"]: widget["properties"] for widget in body["widgets"]}
    connections = widgets["Connections"]["metrics"][0]
    assert connections[:6] == ["AWS/ApiGateway", "ConnectCount", "ApiId", api(auth_run).id, "Stage", "dev"], (
        f"{dashboard}: connections widget plots {connections}"
    )
    plotted = {line[3] for line in widgets["Function errors"]["metrics"]}
    assert plotted == set(function_names(auth_run).values()), f"{dashboard}: function errors of {plotted}"
    assert auth_run.outputs["dashboardUrl"] == (
        f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name={name}"
    ), f"dashboardUrl {auth_run.outputs['dashboardUrl']}"
    assert auth_run.outputs["alarmTopicArn"] == auth_run.one(TOPIC, "monitoring-alarms").outputs["arn"], "alarmTopicArn"


# --- tracing and reserved concurrency ---


def test_tracing_and_reserved_concurrency_reach_every_function_the_authorizer_included() -> None:
    run = run_program("dev", {**AUTH_ON, "tracing": True, "reservedConcurrency": 7})
    functions = run.of_type(FUNCTION)
    assert len(functions) == len(ALL_FUNCTIONS), f"functions deployed: {[str(f) for f in functions]}"
    for function in functions:
        assert function.inputs["tracingConfig"] == {"mode": "Active"}, f"{function}: not actively traced"
        assert function.inputs["reservedConcurrentExecutions"] == 7, f"{function}: reserved concurrency"
        role = run.by_urn(next(r.urn for r in run.of_type(ROLE) if r.outputs["arn"] == function.inputs["role"]))
        tracing = [
            p
            for p in run.of_type(ROLE_POLICY)
            if p.inputs["role"] == role.outputs["name"] and p.name.endswith("-tracing")
        ]
        assert len(tracing) == 1, f"{role}: may not write traces"
        assert tracing[0].urn in function.dependencies, f"{function}: may run before it may write traces"


# --- the policy pack ---


def policy_findings(run: ProgramRun) -> list[str]:
    """Every finding of the pack's rules (advisory ones included) on the run's resources and on the stack."""
    custom = [resource for resource in run.resources if resource.custom]
    found = [
        f"{rule} on {resource}: {message}"
        for resource in custom
        for rule, messages in violations(resource.type, resource.inputs).items()
        for message in messages
    ]
    stack = [StackResource(resource.type, resource.urn, resource.outputs) for resource in custom]
    found += [f"{rule.name} on {urn}: {message}" for rule in STACK_RULES for urn, message in rule.check(stack)]
    return found


def test_prod_passes_every_policy_of_the_pack(prod_run: ProgramRun, everything_run: ProgramRun) -> None:
    """Advisory rules too: prod has point-in-time recovery and tracing on, which dev leaves off on purpose."""
    for run in (prod_run, everything_run):
        findings = policy_findings(run)
        assert findings == [], f"prod ({run.config.get('websocket-chat:auth')} auth): " + "\n".join(findings)


# --- definition drift ---


def test_an_authorizer_on_a_route_that_does_not_exist_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(definition, "AUTHORIZER_ROUTE", "$join")
    with pytest.raises(ProgramError, match=r"the authorizer guards '\$join', which is not a route of this API"):
        run_program("dev", AUTH_ON)


@pytest.mark.parametrize(
    ("authorization_type", "authorizer_id"), [("CUSTOM", None), ("NONE", "a1b2c3")], ids=["custom-alone", "id-alone"]
)
def test_a_route_takes_an_authorizer_id_with_custom_authorization_only(
    authorization_type: str, authorizer_id: str | None
) -> None:
    args = LambdaRouteArgs(
        api=cast(WebSocketApi, None),  # refused before the API is used
        stage_name="dev",
        route_key="$connect",
        function_name="connect-function",
        function_invoke_arn="arn:aws:apigateway:us-east-1:lambda:path/functions/connect/invocations",
        authorization_type=authorization_type,
        authorizer_id=authorizer_id,
    )
    with pytest.raises(ValueError, match=rf"route '\$connect': authorization type {authorization_type}"):
        LambdaRoute("connect", args)
