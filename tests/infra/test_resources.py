"""Every resource `pulumi up` creates, with the properties the issue asks for, under the dev and prod configs."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pulumi
import pytest

from app import definition
from app.definition import Function, Route, Table
from handlers import environment, room_service
from infra.archive import SOURCE_ROOT, build_archive, content_hash
from tests.infra.mocks import ProgramError, ProgramRun, RegisteredResource, run_program

API = "aws:apigatewayv2/api:Api"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
ROUTE = "aws:apigatewayv2/route:Route"
PERMISSION = "aws:lambda/permission:Permission"
ACCOUNT = "aws:apigateway/account:Account"
STAGE = "aws:apigatewayv2/stage:Stage"
TOPIC = "aws:sns/topic:Topic"
MANAGED_POLICY = "aws:iam/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
PARAMETER = "aws:ssm/parameter:Parameter"

BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
KEBAB_CASE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def api(run: ProgramRun) -> RegisteredResource:
    return run.one(API, "websocket-api")


def function_of(run: ProgramRun, function: Function) -> RegisteredResource:
    return run.one(FUNCTION, f"{function.name}-function")


def table(run: ProgramRun) -> RegisteredResource:
    return run.one(TABLE, "connections-table")


def stage(run: ProgramRun) -> RegisteredResource:
    return run.one(STAGE, "websocket-stage")


def callback_url(run: ProgramRun, stage_name: str, region: str = "us-east-1") -> str:
    return f"https://{api(run).id}.execute-api.{region}.amazonaws.com/{stage_name}"


# --- the inventory ---


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_program_creates_exactly_these_resources(stack: str, dev_run: ProgramRun, prod_run: ProgramRun) -> None:
    run = dev_run if stack == "dev" else prod_run
    functions, routes = len(definition.FUNCTIONS), len(definition.ROUTES)
    traced = stack == "prod"  # prod turns tracing on: one more inline policy per function
    expected = {
        API: 1,
        TABLE: len(definition.TABLES),
        STAGE: 1,
        FUNCTION: functions,
        # A fresh account: one more role, attached to AWS's push-to-CloudWatch policy, set as the account setting.
        ROLE: functions + 1,
        # One more for each function that fans out to itself (`lambda:InvokeFunction` on its own ARN).
        ROLE_POLICY: functions * (2 if traced else 1)
        + sum(function.invokes_itself for function in definition.FUNCTIONS),
        ATTACHMENT: functions + 1,
        ACCOUNT: 1,
        PARAMETER: 1,  # the marker by which the stack recognises that role as its own (infra/account.py)
        LOG_GROUP: functions + 1,  # one per function and the stage's access logs
        INTEGRATION: routes,
        ROUTE: routes,
        PERMISSION: routes,
        # Monitoring, always on: the API's two error alarms and two per function, one topic, one dashboard.
        TOPIC: 1,
        MANAGED_POLICY: len(definition.INVOKED_FUNCTIONS),  # for backends to invoke them with
        ALARM: 2 + 2 * functions,
        DASHBOARD: 1,
    }
    actual = Counter(resource.type for resource in run.resources if resource.custom)
    assert actual == expected, f"{stack}: resource inventory differs: {dict(actual)}"


def test_every_resource_lives_in_a_component_with_a_kebab_case_name(dev_run: ProgramRun) -> None:
    for resource in dev_run.resources:
        assert KEBAB_CASE.match(resource.name), f"{resource}: logical name is not kebab-case"
        if resource.custom:
            parent = dev_run.by_urn(resource.parent)
            assert not parent.custom, f"{resource}: parent {parent} is not a component"
            assert resource.name.startswith(f"{parent.name}-"), f"{resource}: name not derived from {parent.name}"


def test_no_physical_name_is_hard_coded(dev_run: ProgramRun) -> None:
    for resource in dev_run.resources:
        # A stage name is a path segment within its API; a dashboard has no auto-naming, and its name is derived
        # from the API id and stage (tests/infra/test_hardening.py); the logging role's marker is read before the
        # run, by its name (tests/infra/test_account_logging.py).
        if not resource.custom or resource.type in (STAGE, DASHBOARD) or resource.name == "api-gateway-logging-marker":
            continue
        named = {"name", "namePrefix"} & set(resource.inputs)
        assert not named, f"{resource}: sets {named}; physical names are left to Pulumi's auto-naming"


def test_definition_drift_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    reads_unknown = Function(
        name="audit", module="connect", environment=("AUDIT_BUCKET",), table_access=(), callback_methods=()
    )
    deployed = definition.FUNCTIONS
    monkeypatch.setattr(definition, "FUNCTIONS", (*deployed, reads_unknown))
    with pytest.raises(ProgramError, match=r"function 'audit' reads AUDIT_BUCKET, which this stack never sets"):
        run_program("dev")
    monkeypatch.setattr(definition, "FUNCTIONS", tuple(function for function in deployed if function.name != "default"))
    with pytest.raises(ProgramError, match=r"route '\$default' is served by 'default', which is not deployed"):
        run_program("dev")


# --- API ---


def test_api_is_websocket_routing_on_the_action_field(dev_run: ProgramRun) -> None:
    resource = api(dev_run)
    assert resource.inputs["protocolType"] == "WEBSOCKET", f"{resource}: not a WebSocket API"
    assert resource.inputs["routeSelectionExpression"] == "$request.body.action", f"{resource}: route selection"


# --- functions ---


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_a_function_fans_out_exactly_when_it_posts_to_the_whole_audience(function: Function) -> None:
    # CPU follows memory on Lambda and a broadcast is CPU-bound, so a function that posts to a room's members
    # (messages or presence) must get the broadcast memory; one that only answers its sender must not.
    tree = ast.parse((SOURCE_ROOT / "handlers" / f"{function.module}.py").read_text(encoding="utf-8"))
    called = {
        node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    broadcasts = bool(called & ROOM_WIDE_POSTS)
    assert function.fans_out == broadcasts, f"{function.name}: fans_out={function.fans_out}, broadcasts={broadcasts}"


ROOM_WIDE_POSTS = frozenset({"to_room", "announce", "post_message"})
"""The `handlers.room_service` calls that post to every member of a room."""


def test_the_room_wide_posts_exist() -> None:
    missing = {name for name in ROOM_WIDE_POSTS if not hasattr(room_service.RoomService, name)}
    missing -= {name for name in missing if callable(getattr(room_service, name, None))}
    assert not missing, f"handlers.room_service has no {sorted(missing)}: update ROOM_WIDE_POSTS"


def test_some_function_fans_out() -> None:
    assert any(function.fans_out for function in definition.FUNCTIONS), "the chat broadcasts through some function"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_function_runs_its_handler_with_the_dev_settings(dev_run: ProgramRun, function: Function) -> None:
    resource = function_of(dev_run, function)
    assert resource.inputs["handler"] == f"handlers.{function.module}.handler", f"{resource}: handler"
    assert resource.inputs["runtime"] == "python3.13", f"{resource}: runtime"
    assert resource.inputs["architectures"] == ["arm64"], f"{resource}: architectures"
    expected_memory = 1769 if function.fans_out else 256
    assert resource.inputs["memorySize"] == expected_memory, f"{resource}: memory"
    assert resource.inputs["timeout"] == 29, f"{resource}: timeout"


def test_function_settings_come_from_config() -> None:
    run = run_program(
        "dev",
        {
            "lambdaRuntime": "python3.12",
            "lambdaArchitecture": "x86_64",
            "lambdaMemoryMb": 1024,
            "broadcastMemoryMb": 3008,
            "lambdaTimeoutSeconds": 10,
        },
    )
    for function in definition.FUNCTIONS:
        resource = function_of(run, function)
        assert resource.inputs["runtime"] == "python3.12", f"{resource}: runtime not from config"
        assert resource.inputs["architectures"] == ["x86_64"], f"{resource}: architecture not from config"
        expected_memory = 3008 if function.fans_out else 1024
        assert resource.inputs["memorySize"] == expected_memory, f"{resource}: memory not from config"
        assert resource.inputs["timeout"] == 10, f"{resource}: timeout not from config"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_function_environment_is_exactly_what_it_reads(dev_run: ProgramRun, function: Function) -> None:
    resource = function_of(dev_run, function)
    variables = resource.inputs["environment"]["variables"]
    assert set(variables) == set(function.environment), f"{resource}: environment names {sorted(variables)}"
    expected = {
        **{
            variable: dev_run.one(TABLE, f"{shape.logical_name}-table").outputs["name"]
            for variable, shape in definition.TABLES.items()
        },
        environment.ENDPOINT_URL: callback_url(dev_run, "dev"),
        environment.MAX_MESSAGE_BYTES: "16384",
        environment.BROADCAST_MAX_POSTS_PER_SECOND: "9000",
        environment.BROADCAST_SHARD_SIZE: "5000",
        environment.MESSAGE_RATE_PER_SECOND: "5.0",
        environment.MESSAGE_BURST: "10",
        environment.MAX_ROOMS: "20",
        environment.HISTORY_LIMIT: "50",
        environment.HISTORY_RETENTION_DAYS: "7",
        environment.PRESENCE_MAX_MEMBERS: "100",
    }
    for name, value in variables.items():
        assert value == expected[name], f"{resource}: {name}={value!r}, expected {expected[name]!r}"


def test_max_message_bytes_and_stage_reach_the_environment() -> None:
    run = run_program("dev", {"maxMessageBytes": 2048, "stageName": "beta"})
    variables = function_of(run, definition.SEND_MESSAGE).inputs["environment"]["variables"]
    assert variables[environment.MAX_MESSAGE_BYTES] == "2048", "MAX_MESSAGE_BYTES not from config"
    assert variables[environment.ENDPOINT_URL] == callback_url(run, "beta"), "ENDPOINT_URL not on the configured stage"
    run = run_program("dev", {"broadcastMaxPostsPerSecond": 4000, "messageRatePerSecond": 1.5, "messageBurst": 3})
    variables = function_of(run, definition.SEND_MESSAGE).inputs["environment"]["variables"]
    fan_out = [
        variables[name]
        for name in (
            environment.BROADCAST_MAX_POSTS_PER_SECOND,
            environment.MESSAGE_RATE_PER_SECOND,
            environment.MESSAGE_BURST,
        )
    ]
    assert fan_out == ["4000", "1.5", "3"], f"the pacing cap and the rate limit must come from config: {fan_out}"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_function_code_is_its_deterministic_archive(dev_run: ProgramRun, function: Function) -> None:
    resource = function_of(dev_run, function)
    code = resource.inputs["code"]
    assert isinstance(code, pulumi.FileArchive), f"{resource}: code is {code!r}, not the zip file"
    assert not Path(code.path).is_absolute(), f"{resource}: archive path {code.path} is machine-specific"
    assert Path(code.path) == Path("build", f"{function.name}.zip"), f"{resource}: archive path {code.path}"
    expected = build_archive(function)
    assert (SOURCE_ROOT / code.path).read_bytes() == expected, f"{resource}: zip on disk differs from build_archive"
    assert resource.inputs["sourceCodeHash"] == content_hash(function), (
        f"{resource}: sourceCodeHash is not the hash of the archive's contents"
    )


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_function_has_its_own_role_and_log_group_created_first(dev_run: ProgramRun, function: Function) -> None:
    resource = function_of(dev_run, function)
    role = dev_run.one(ROLE, f"{function.name}-role")
    logs = dev_run.one(LOG_GROUP, f"{function.name}-logs")
    attachment = dev_run.one(ATTACHMENT, f"{function.name}-basic-execution")
    policy = dev_run.one(ROLE_POLICY, f"{function.name}-policy")
    assert resource.inputs["role"] == role.outputs["arn"], f"{resource}: runs with another role"
    assert resource.inputs["loggingConfig"]["logGroup"] == logs.outputs["name"], f"{resource}: logs elsewhere"
    for prerequisite in (logs, role, attachment, policy):
        assert prerequisite.urn in resource.dependencies, f"{resource}: does not wait for {prerequisite}"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_basic_execution_is_a_managed_policy_attachment(dev_run: ProgramRun, function: Function) -> None:
    role = dev_run.one(ROLE, f"{function.name}-role")
    attachment = dev_run.one(ATTACHMENT, f"{function.name}-basic-execution")
    assert attachment.inputs["policyArn"] == BASIC_EXECUTION, f"{attachment}: attaches {attachment.inputs['policyArn']}"
    assert attachment.inputs["role"] == role.outputs["name"], f"{attachment}: attached to another role"
    assert "managedPolicyArns" not in role.inputs, f"{role}: uses the deprecated managed_policy_arns"


@pytest.mark.parametrize(("stack", "days"), [("dev", 7), ("prod", 365)])
def test_every_log_group_keeps_logs_for_the_configured_retention(
    stack: str, days: int, dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    run = dev_run if stack == "dev" else prod_run
    for logs in run.of_type(LOG_GROUP):
        assert logs.inputs["retentionInDays"] == days, f"{stack} {logs}: retention {logs.inputs['retentionInDays']}"


# --- table ---


def test_table_is_keyed_by_connection_with_ttl_encryption_and_on_demand(dev_run: ProgramRun) -> None:
    resource = table(dev_run)
    inputs = resource.inputs
    assert inputs["hashKey"] == "ConnectionId", f"{resource}: hash key"
    assert inputs["attributes"] == [
        {"name": "ConnectionId", "type": "S"},
        {"name": "DisplayName", "type": "S"},
    ], f"{resource}: attributes"
    assert "rangeKey" not in inputs, f"{resource}: has a range key"
    assert inputs["globalSecondaryIndexes"] == [
        {
            "name": "ByName",
            "keySchemas": [{"attributeName": "DisplayName", "keyType": "HASH"}],
            "projectionType": "INCLUDE",
            "nonKeyAttributes": ["ExpiresAt"],
        }
    ], f"{resource}: whispers look names up in the ByName index"
    assert inputs["billingMode"] == "PAY_PER_REQUEST", f"{resource}: not on-demand by default"
    assert "readCapacity" not in inputs and "writeCapacity" not in inputs, f"{resource}: capacity on on-demand"
    assert inputs["ttl"] == {"attributeName": "ExpiresAt", "enabled": True}, f"{resource}: TTL"
    assert inputs["serverSideEncryption"] == {"enabled": True}, f"{resource}: SSE (AWS-managed key by default)"
    assert inputs["pointInTimeRecovery"] == {"enabled": False}, f"{resource}: PITR on in dev"


def test_prod_tables_have_point_in_time_recovery(prod_run: ProgramRun) -> None:
    for resource in prod_run.of_type(TABLE):
        assert resource.inputs["pointInTimeRecovery"] == {"enabled": True}, f"{resource}: PITR off in prod"


@pytest.mark.parametrize(("logical", "range_key", "range_type"), [("rooms", "Entry", "S"), ("history", "Seq", "N")])
def test_room_tables_are_keyed_by_room_with_ttl_and_encryption(
    dev_run: ProgramRun, logical: str, range_key: str, range_type: str
) -> None:
    resource = dev_run.one(TABLE, f"{logical}-table")
    inputs = resource.inputs
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("Room", range_key), f"{resource}: keys"
    assert inputs["attributes"] == [
        {"name": "Room", "type": "S"},
        {"name": range_key, "type": range_type},
    ], f"{resource}: attributes"
    assert inputs["ttl"] == {"attributeName": "ExpiresAt", "enabled": True}, f"{resource}: TTL"
    assert inputs["serverSideEncryption"] == {"enabled": True}, f"{resource}: SSE"
    assert inputs["pointInTimeRecovery"] == {"enabled": False}, f"{resource}: PITR on in dev"


def test_table_capacity_and_customer_key_come_from_config() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    run = run_program(
        "dev",
        {
            "tableBillingMode": "PROVISIONED",
            "tableReadCapacity": 5,
            "tableWriteCapacity": 3,
            "tableKmsKeyArn": key,
        },
    )
    inputs = table(run).inputs
    assert inputs["billingMode"] == "PROVISIONED", "billing mode not from config"
    assert (inputs["readCapacity"], inputs["writeCapacity"]) == (5, 3), "capacity not from config"
    assert inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key}, "customer key not used"


def test_a_table_declared_in_the_definition_is_created_and_named_to_its_readers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audit = Table(logical_name="audit", hash_key="AuditId", ttl_attribute="ExpiresAt")
    reader = Function(
        name="audit-reader", module="connect", environment=("AUDIT_TABLE",), table_access=(), callback_methods=()
    )
    monkeypatch.setattr(definition, "TABLES", {**definition.TABLES, "AUDIT_TABLE": audit})
    monkeypatch.setattr(definition, "FUNCTIONS", (*definition.FUNCTIONS, reader))
    run = run_program("dev")
    created = run.one(TABLE, "audit-table")
    assert created.inputs["hashKey"] == "AuditId", f"{created}: hash key not from the definition"
    variables = run.one(FUNCTION, "audit-reader-function").inputs["environment"]["variables"]
    assert variables == {"AUDIT_TABLE": created.outputs["name"]}, "the reader is not told the new table's name"
    assert table(run).inputs["hashKey"] == "ConnectionId", "the connections table changed"


# --- routes, integrations, permissions ---


@pytest.mark.parametrize("route", definition.ROUTES, ids=lambda route: route.key)
def test_route_targets_an_aws_proxy_integration_of_its_function(dev_run: ProgramRun, route: Route) -> None:
    api_id = api(dev_run).id
    route_resource = dev_run.one(ROUTE, f"{route.logical_name}-route")
    integration = dev_run.one(INTEGRATION, f"{route.logical_name}-integration")
    function = function_of(dev_run, route.function)
    assert route_resource.inputs["routeKey"] == route.key, f"{route_resource}: route key"
    assert route_resource.inputs["apiId"] == api_id, f"{route_resource}: on another API"
    assert route_resource.inputs["target"] == f"integrations/{integration.id}", f"{route_resource}: target"
    assert integration.inputs["apiId"] == api_id, f"{integration}: on another API"
    assert integration.inputs["integrationType"] == "AWS_PROXY", f"{integration}: type"
    assert integration.inputs["integrationUri"] == function.outputs["invokeArn"], f"{integration}: wrong function"


def test_routes_are_exactly_the_definition(dev_run: ProgramRun) -> None:
    keys = sorted(route.inputs["routeKey"] for route in dev_run.of_type(ROUTE))
    assert keys == sorted(route.key for route in definition.ROUTES), f"route keys {keys}"


@pytest.mark.parametrize("route", definition.ROUTES, ids=lambda route: route.key)
def test_only_this_api_stage_and_route_may_invoke_the_function(dev_run: ProgramRun, route: Route) -> None:
    permission = dev_run.one(PERMISSION, f"{route.logical_name}-permission")
    function = function_of(dev_run, route.function)
    execution_arn = api(dev_run).outputs["executionArn"]
    assert permission.inputs["action"] == "lambda:InvokeFunction", f"{permission}: action"
    assert permission.inputs["principal"] == "apigateway.amazonaws.com", f"{permission}: principal"
    assert permission.inputs["function"] == function.outputs["name"], f"{permission}: for another function"
    assert permission.inputs["sourceArn"] == f"{execution_arn}/dev/{route.key}", f"{permission}: source ARN"
    route_resource = dev_run.one(ROUTE, f"{route.logical_name}-route")
    assert permission.urn in route_resource.dependencies, f"{route_resource}: may receive traffic before {permission}"


# --- deployment and stage ---


def test_stage_goes_live_after_every_route(dev_run: ProgramRun) -> None:
    """An auto-deploying stage takes its first deployment when it is created, and an API without routes fails it."""
    resource = stage(dev_run)
    for route in dev_run.of_type(ROUTE):
        assert route.urn in resource.dependencies, f"{resource}: may be created before {route}"


@pytest.mark.parametrize(("stack", "burst", "rate"), [("dev", 500, 1000), ("prod", 200, 100)])
def test_stage_auto_deploys_with_throttling(
    stack: str, burst: int, rate: float, dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    run = dev_run if stack == "dev" else prod_run
    resource = stage(run)
    assert resource.inputs["name"] == stack, f"{resource}: stage name is not the stack name"
    assert resource.inputs["apiId"] == api(run).id, f"{resource}: on another API"
    assert resource.inputs["autoDeploy"] is True, f"{resource}: does not redeploy when routes change"
    assert "deploymentId" not in resource.inputs, f"{resource}: an auto-deploying stage takes no deployment id"
    settings = resource.inputs["defaultRouteSettings"]
    assert settings["throttlingBurstLimit"] == burst, f"{resource}: burst {settings['throttlingBurstLimit']}"
    assert settings["throttlingRateLimit"] == rate, f"{resource}: rate {settings['throttlingRateLimit']}"


def test_stage_writes_json_access_logs_to_its_log_group(dev_run: ProgramRun) -> None:
    resource = stage(dev_run)
    logs = dev_run.one(LOG_GROUP, "websocket-access-logs")
    access = resource.inputs["accessLogSettings"]
    assert access["destinationArn"] == logs.outputs["arn"], f"{resource}: access logs go elsewhere"
    fields = json.loads(access["format"])
    assert {"requestId", "connectionId", "eventType", "routeKey", "status"} <= set(fields), (
        f"{resource}: access log format lacks request, connection, event, route or status: {sorted(fields)}"
    )
    assert all(value.startswith("$context.") for value in fields.values()), f"{resource}: non-context log field"


def test_execution_logging_is_off_by_default_and_a_switch(dev_run: ProgramRun) -> None:
    default = stage(dev_run).inputs["defaultRouteSettings"]
    assert default["loggingLevel"] == "OFF", "execution logging is not off by default"
    assert default["dataTraceEnabled"] is False, "data tracing would log every chat message"
    assert [group.name for group in dev_run.of_type(LOG_GROUP) if "execution" in group.name] == [], (
        "an execution log group exists while execution logging is off"
    )
    switched = stage(run_program("dev", {"executionLoggingLevel": "ERROR"})).inputs["defaultRouteSettings"]
    assert switched["loggingLevel"] == "ERROR", "executionLoggingLevel does not switch execution logging"


def test_execution_logs_go_to_a_group_the_stack_owns_with_its_retention() -> None:
    """API Gateway writes execution logs to `API-Gateway-Execution-Logs_{apiId}/{stage}` and creates that group
    without retention if it is missing (/work/shared/reference/apigw-websocket.md; AWS's "Set up CloudWatch logging
    for REST APIs" states the name, its WebSocket logging page names no other: docs/first-deploy.md). Created by the
    stack before the stage, it expires and is destroyed with the stack."""
    run = run_program("dev", {"executionLoggingLevel": "INFO", "logRetentionDays": 30})
    group = run.one(LOG_GROUP, "websocket-execution-logs")
    assert group.inputs["name"] == f"API-Gateway-Execution-Logs_{api(run).id}/dev", f"{group}: not API Gateway's name"
    assert group.inputs["retentionInDays"] == 30, f"{group}: retention {group.inputs.get('retentionInDays')}"
    assert group.urn in stage(run).dependencies, f"{stage(run)}: may log before its execution log group exists"


# --- outputs ---


def test_outputs_have_their_exact_formats(dev_run: ProgramRun) -> None:
    api_id = api(dev_run).id
    dashboard = f"monitoring-{api_id}-dev"
    assert dev_run.outputs == {
        "apiId": api_id,
        "wssUrl": f"wss://{api_id}.execute-api.us-east-1.amazonaws.com/dev",
        "callbackUrl": f"https://{api_id}.execute-api.us-east-1.amazonaws.com/dev",
        "connectionsTable": table(dev_run).outputs["name"],
        "dashboardUrl": f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name={dashboard}",
        "alarmTopicArn": dev_run.one(TOPIC, "monitoring-alarms").outputs["arn"],
        "publishFunctionName": function_of(dev_run, definition.PUBLISH).outputs["name"],
        "publishFunctionArn": function_of(dev_run, definition.PUBLISH).outputs["arn"],
        "publishPolicyArn": dev_run.one(MANAGED_POLICY, "chat-publish-invoke").outputs["arn"],
    }, f"stack outputs: {dev_run.outputs}"


def test_backends_get_a_policy_to_invoke_publish_and_nothing_else(dev_run: ProgramRun) -> None:
    policy = dev_run.one(MANAGED_POLICY, "chat-publish-invoke")
    document = json.loads(policy.inputs["policy"])
    assert document["Statement"] == [
        {
            "Sid": "InvokeFunction",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": function_of(dev_run, definition.PUBLISH).outputs["arn"],
        }
    ], f"{policy}: grants {document['Statement']}"
    permissions = [p for p in dev_run.of_type("aws:lambda/permission:Permission") if "publish" in p.name]
    assert permissions == [], "publish is invoked with the caller's IAM credentials, never through a resource policy"


def test_outputs_follow_the_region_and_stage() -> None:
    run = run_program("dev", {"aws:region": "eu-west-1", "stageName": "live"})
    api_id = api(run).id
    assert run.outputs["wssUrl"] == f"wss://{api_id}.execute-api.eu-west-1.amazonaws.com/live", "wssUrl"
    assert run.outputs["callbackUrl"] == callback_url(run, "live", "eu-west-1"), "callbackUrl"
    assert run.outputs["dashboardUrl"].startswith(
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home"
        f"?region=eu-west-1#dashboards:name=monitoring-{api_id}-live"
    ), f"dashboardUrl {run.outputs['dashboardUrl']} is not the stack's region and stage"
