"""Least privilege, read from the policy documents the program registers (parsed JSON, never string matching)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import definition
from app.definition import Function
from tests.infra.mocks import ProgramRun, RegisteredResource, run_program

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PERMISSION = "aws:lambda/permission:Permission"
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
"""What active tracing needs; X-Ray offers no resource-level permissions for them, so they are granted on `*`."""


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def document(resource: RegisteredResource, field: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(resource.inputs[field])
    assert parsed.get("Version") == "2012-10-17", f"{resource}: {field} has version {parsed.get('Version')!r}"
    return parsed


def grants(resource: RegisteredResource) -> set[tuple[str, str]]:
    """Every (action, resource) pair an Allow statement of a role policy grants."""
    pairs: set[tuple[str, str]] = set()
    for statement in document(resource, "policy")["Statement"]:
        assert statement["Effect"] == "Allow", f"{resource}: unexpected {statement['Effect']} statement"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, f"{resource}: statement {statement}"
        pairs |= {(action, arn) for action in as_list(statement["Action"]) for arn in as_list(statement["Resource"])}
    return pairs


def expected_grants(run: ProgramRun, function: Function) -> set[tuple[str, str]]:
    execution_arn = run.one("aws:apigatewayv2/api:Api", "websocket-api").outputs["executionArn"]
    stage_name = run.one("aws:apigatewayv2/stage:Stage", "websocket-stage").inputs["name"]
    pairs: set[tuple[str, str]] = set()
    for access in function.table_access:
        table_arn = run.one("aws:dynamodb/table:Table", f"{definition.TABLES[access.table].logical_name}-table")
        arn = table_arn.outputs["arn"] if access.index is None else f"{table_arn.outputs['arn']}/index/{access.index}"
        pairs |= {(action, arn) for action in access.actions}
    return pairs | {
        ("execute-api:ManageConnections", f"{execution_arn}/{stage_name}/{method}/@connections/*")
        for method in function.callback_methods
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_role_policy_grants_exactly_what_the_function_does(
    stack: str, function: Function, dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    run = dev_run if stack == "dev" else prod_run
    policy = run.one(ROLE_POLICY, f"{function.name}-policy")
    role = run.one(ROLE, f"{function.name}-role")
    assert policy.inputs["role"] == role.outputs["name"], f"{policy}: attached to another role"
    assert grants(policy) == expected_grants(run, function), f"{stack} {policy}: grants {sorted(grants(policy))}"


def test_the_issue_s_least_privilege_holds(dev_run: ProgramRun) -> None:
    """Spelled out per table, in case the definition itself drifts."""

    def granted(function: str) -> dict[str, set[str]]:
        by_table: dict[str, set[str]] = {}
        for action, arn in grants(dev_run.one(ROLE_POLICY, f"{function}-policy")):
            if action.startswith("dynamodb:"):
                table = dev_run.by_urn(
                    next(t.urn for t in dev_run.of_type("aws:dynamodb/table:Table") if arn.startswith(t.outputs["arn"]))
                ).name.removesuffix("-table")
                by_table.setdefault(table + ("/ByName" if arn.endswith("/index/ByName") else ""), set()).add(
                    action.removeprefix("dynamodb:")
                )
        return by_table

    # A member that answers 410 is read (one still in its `$connect` is kept), then deleted.
    forget = {"connections": {"GetItem", "DeleteItem"}, "rooms": {"DeleteItem"}}
    assert granted("connect") == {
        "connections": {"PutItem", "UpdateItem", "GetItem", "DeleteItem"},
        "rooms": {"PutItem", "Query", "DeleteItem"},
    }
    assert granted("disconnect") == {"connections": {"GetItem", "DeleteItem"}, "rooms": {"DeleteItem", "Query"}}
    assert granted("send-message") == {
        "connections": {"GetItem", "UpdateItem", "DeleteItem"},  # UpdateItem: the sender's rate-limit bucket
        "rooms": {"Query", "UpdateItem", "DeleteItem"},
        "history": {"PutItem"},
    }
    assert granted("join") == {
        "connections": {"GetItem", "UpdateItem", "DeleteItem"},
        "rooms": {"PutItem", "Query", "DeleteItem"},
        "history": {"Query"},
    }
    assert granted("leave") == {
        "connections": {"GetItem", "UpdateItem", "DeleteItem"},
        "rooms": {"Query", "DeleteItem"},
    }
    assert granted("who") == {"connections": {"GetItem"}, "rooms": {"Query"}}
    assert granted("history") == {"connections": {"GetItem"}, "history": {"Query"}}
    assert granted("whisper") == {"connections": {"GetItem", "DeleteItem"}, "connections/ByName": {"Query"}}
    assert granted("publish") == {**forget, "rooms": {"Query", "UpdateItem", "DeleteItem"}, "history": {"PutItem"}}
    assert granted("default") == {}
    no_scan = [name for name in (f.name for f in definition.FUNCTIONS) if "Scan" in str(granted(name))]
    assert not no_scan, f"members are read by Query on the room, never a Scan: {no_scan}"
    callback_resources = {
        arn for _, arn in grants(dev_run.one(ROLE_POLICY, "send-message-policy")) if "@connections" in arn
    }
    assert all(arn.endswith("/dev/POST/@connections/*") for arn in callback_resources), (
        f"callback grants not limited to POST on this stage: {callback_resources}"
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_wildcard_action_or_resource_anywhere(stack: str, dev_run: ProgramRun, prod_run: ProgramRun) -> None:
    run = dev_run if stack == "dev" else prod_run
    for policy in run.of_type(ROLE_POLICY):
        for action, arn in grants(policy):
            assert "*" not in action, f"{policy}: wildcard action {action}"
            if action in XRAY_WRITE:  # the one documented exception (docs/infrastructure.md, "Where * appears")
                continue
            assert arn != "*", f"{policy}: grants {action} on every resource"
            if not action.startswith("execute-api:"):
                assert "*" not in arn, f"{policy}: wildcard in resource {arn}"
            else:  # the connection id is only known at run time: the one place a trailing * is needed
                assert arn.count("*") == 1 and arn.endswith("/@connections/*"), f"{policy}: resource {arn}"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_role_trusts_lambda_only_and_has_only_basic_execution_attached(dev_run: ProgramRun, function: Function) -> None:
    role = dev_run.one(ROLE, f"{function.name}-role")
    trust = document(role, "assumeRolePolicy")
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ], f"{role}: trust policy {trust['Statement']}"
    assert "inlinePolicies" not in role.inputs, f"{role}: inline policies beside the RolePolicy"
    attached = [
        attachment.inputs["policyArn"]
        for attachment in dev_run.of_type(ATTACHMENT)
        if attachment.inputs["role"] == role.outputs["name"]
    ]
    assert attached == [BASIC_EXECUTION], f"{role}: managed policies {attached}"


def test_every_role_is_used_by_exactly_one_function(dev_run: ProgramRun) -> None:
    """Every role but the account's API Gateway logging role (tests/infra/test_account_logging.py)."""
    users = [function.inputs["role"] for function in dev_run.of_type("aws:lambda/function:Function")]
    function_roles = [role for role in dev_run.of_type(ROLE) if not role.name.startswith("api-gateway-logging")]
    assert len(set(users)) == len(users) == len(function_roles), f"roles shared between functions: {users}"


def test_invoke_permissions_name_a_service_and_this_api(dev_run: ProgramRun) -> None:
    execution_arn = dev_run.one("aws:apigatewayv2/api:Api", "websocket-api").outputs["executionArn"]
    for permission in dev_run.of_type(PERMISSION):
        assert permission.inputs["principal"] == "apigateway.amazonaws.com", f"{permission}: public or other principal"
        source = permission.inputs.get("sourceArn", "")
        assert source.startswith(f"{execution_arn}/dev/"), f"{permission}: source ARN {source!r} not this API's stage"
        assert "*" not in source, f"{permission}: wildcard in source ARN {source}"


@pytest.mark.parametrize(("stack", "traced"), [("dev", False), ("prod", True)])
def test_tracing_grants_only_the_x_ray_writes_and_only_when_on(
    stack: str, traced: bool, dev_run: ProgramRun, prod_run: ProgramRun
) -> None:
    run = dev_run if stack == "dev" else prod_run
    for function in definition.FUNCTIONS:
        role = run.one(ROLE, f"{function.name}-role")
        tracing = [policy for policy in run.of_type(ROLE_POLICY) if policy.name == f"{function.name}-tracing"]
        if not traced:
            assert tracing == [], f"{stack}: {role} may write traces although tracing is off"
            continue
        assert len(tracing) == 1, f"{stack}: {role} has {len(tracing)} tracing policies"
        assert tracing[0].inputs["role"] == role.outputs["name"], f"{tracing[0]}: attached to another role"
        assert grants(tracing[0]) == {(action, "*") for action in XRAY_WRITE}, (
            f"{tracing[0]}: grants {sorted(grants(tracing[0]))}, expected only the X-Ray writes"
        )
        function_resource = run.one("aws:lambda/function:Function", f"{function.name}-function")
        assert tracing[0].urn in function_resource.dependencies, f"{function_resource}: may trace before it may write"


def test_a_permissions_boundary_caps_every_role_the_stack_creates() -> None:
    """A deploy role may require `iam:PermissionsBoundary` on CreateRole (docs/deploy.md): every role carries it."""
    boundary = "arn:aws:iam::123456789012:policy/websocket-chat-boundary"
    run = run_program(
        "dev",
        {
            "permissionsBoundaryArn": boundary,
            "auth": "jwt",
            "jwtSecret": "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc=",
        },
    )
    roles = run.of_type(ROLE)
    assert any(role.name.startswith("api-gateway-logging") for role in roles), "the account logging role is missing"
    for role in roles:
        assert role.inputs.get("permissionsBoundary") == boundary, f"{role}: created without the boundary"


def test_no_boundary_unless_configured(dev_run: ProgramRun) -> None:
    for role in dev_run.of_type(ROLE):
        assert "permissionsBoundary" not in role.inputs, f"{role}: a boundary nobody configured"


@pytest.mark.parametrize("function", definition.FUNCTIONS, ids=lambda function: function.name)
def test_only_a_fan_out_function_may_invoke_and_only_itself(dev_run: ProgramRun, function: Function) -> None:
    invoke_policies = [
        resource
        for resource in dev_run.resources
        if resource.type == ROLE_POLICY and resource.name.endswith("-invoke-self")
    ]
    mine = [policy for policy in invoke_policies if policy.name == f"{function.name}-invoke-self"]
    if not function.invokes_itself:
        assert mine == [], f"{function.name} must not be able to invoke any function"
        return
    (policy,) = mine
    own_arn = dev_run.one("aws:lambda/function:Function", f"{function.name}-function").outputs["arn"]
    role = dev_run.one(ROLE, f"{function.name}-role")
    assert policy.inputs["role"] == role.outputs["name"], f"{policy}: attached to another role"
    assert grants(policy) == {("lambda:InvokeFunction", own_arn)}, f"{policy}: grants {sorted(grants(policy))}"
