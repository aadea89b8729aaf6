"""The IAM policies docs/deploy.md tells a team to create: valid JSON, a read-only preview role, and a deploy role
per environment scoped to that stack's names, creating roles only under the permissions boundary."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from typing import Any

import pytest
import yaml

from infra.account import marker_name
from tests.infra.mocks import ACCOUNT_ID, run_program, shared_run
from tests.infra.mocks import DEFAULT_REGION as REGION
from tests.policy.workflows import ROOT

DOC = ROOT / "docs" / "deploy.md"
READ_ONLY = re.compile(r"^[a-z0-9-]+:(Get|Describe|List)[A-Za-z]*$|^apigateway:GET$")


def policies() -> dict[str, dict[str, Any]]:
    """Every JSON block of docs/deploy.md that is an IAM document, by the heading (or bold name) above it."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, dict[str, Any]] = {}
    for match in re.finditer(r"```json\n(.*?)```", text, flags=re.DOTALL):
        before = text[: match.start()]
        title = re.findall(r"\*\*([^*]+)\*\*|^#+ (.+)$", before, flags=re.MULTILINE)[-1]
        document = json.loads(match[1])
        found[f"{title[0] or title[1]} #{len(found)}"] = document
    return found


def named(fragment: str) -> list[dict[str, Any]]:
    matching = [document for title, document in policies().items() if fragment in title]
    assert matching, f"docs/deploy.md has no policy under a title containing {fragment!r}"
    return matching


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    listed = document["Statement"]
    return listed if isinstance(listed, list) else [listed]


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_every_policy_in_the_doc_is_valid_json() -> None:
    assert len(policies()) >= 6, f"fewer policies than expected: {list(policies())}"


def test_the_preview_role_can_only_read() -> None:
    trust, permissions = named("Preview role")[:2]
    assert trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:OWNER/REPO:pull_request"
    ), "the preview role trusts more than pull requests"
    for statement in statements(permissions):
        for action in as_list(statement["Action"]):
            assert action == "sts:GetCallerIdentity" or READ_ONLY.match(action), f"preview may {action}"


def test_the_preview_role_may_read_what_the_program_reads_before_any_resource() -> None:
    """`infra.account.read_account_logging`: the account setting and, for `dev` (the stack pull requests preview),
    its logging-role marker; an AccessDenied there fails every preview."""
    allowed = [
        {**s, "Resource": [r.replace("STACK", "dev") for r in as_list(s["Resource"])]}
        for s in statements(named("Preview role")[1])
        if s["Effect"] == "Allow"
    ]
    reads = {
        "apigateway:GET": f"arn:aws:apigateway:{REGION}::/account",
        "ssm:GetParameter": f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/{marker_name('dev')}",
    }
    for action, arn in reads.items():
        assert any(within(action, arn, statement) for statement in allowed), f"preview may not {action} on {arn}"


def deploy_permissions() -> dict[str, Any]:
    documents = named("Deploy role of one environment")
    return next(document for document in documents if any("Sid" in s for s in statements(document)))


def test_one_deploy_role_per_environment() -> None:
    trust = named("Deploy role of one environment")[0]
    subjects = trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subjects == "repo:OWNER/REPO:environment:STACK", f"the deploy role trusts {subjects}"


@pytest.mark.parametrize(
    "sid",
    ["Functions", "StackRoles", "InvokePolicies", "StackParameters", "Tables", "LogGroups", "AlarmTopic", "Alarms"],
)
def test_named_resources_are_scoped_to_the_stack(sid: str) -> None:
    statement = next(s for s in statements(deploy_permissions()) if s.get("Sid") == sid)
    for resource in as_list(statement["Resource"]):
        assert "STACK-" in resource or "STAGE" in resource, f"{sid}: {resource} reaches other stacks' resources"


def test_roles_are_created_only_with_the_boundary() -> None:
    document = deploy_permissions()
    creating = [s for s in statements(document) if "iam:CreateRole" in as_list(s["Action"])]
    assert len(creating) == 1 and creating[0]["Effect"] == "Allow", "CreateRole granted more than once"
    assert "iam:PermissionsBoundary" in creating[0]["Condition"]["ArnEquals"], "CreateRole without a boundary"
    for statement in statements(document):
        if statement["Effect"] == "Allow" and "iam:PutRolePolicy" in as_list(statement["Action"]):
            assert "Condition" in statement, "PutRolePolicy allowed without the boundary condition"
    denied = [s for s in statements(document) if s["Effect"] == "Deny"]
    assert any("iam:DeleteRolePermissionsBoundary" in as_list(s["Action"]) for s in denied), "boundary removable"


def test_the_patterns_match_the_names_the_stack_files_produce() -> None:
    """Each stack file's autonaming puts the stack first, which is what `STACK-*` relies on."""
    for stack in ("dev", "prod"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        pattern = config["pulumi:autonaming"]["pattern"]
        assert pattern.startswith("${stack}-${name}-"), f"Pulumi.{stack}.yaml autonaming {pattern!r}"
        name = pattern.replace("${stack}", stack).replace("${name}", "connect-role").replace("${hex(7)}", "537030b")
        resource = f"arn:aws:iam::ACCOUNT_ID:role/{name}"
        scoped = "arn:aws:iam::ACCOUNT_ID:role/STACK-*-role-*".replace("STACK", stack)
        assert fnmatch.fnmatch(resource, scoped), f"{resource} is outside its own deploy role's {scoped}"
        other = "prod" if stack == "dev" else "dev"
        assert not fnmatch.fnmatch(resource, f"arn:aws:iam::ACCOUNT_ID:role/{other}-*-role-*"), "names overlap"


def test_every_resource_is_tagged_with_its_project_and_environment() -> None:
    """`aws:defaultTags` puts them on every resource that takes tags (the deploy role grants the tag actions)."""
    for stack in ("dev", "prod"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        tags = config["aws:defaultTags"]["tags"]
        assert tags == {"project": "websocket-chat", "environment": stack}, f"Pulumi.{stack}.yaml default tags {tags}"


def test_the_boundary_allows_everything_the_stack_grants_its_roles() -> None:
    """A role may do only what both its policies and its boundary allow (IAM User Guide, "Permissions boundaries for
    IAM entities"), so a grant outside the boundary fails with AccessDenied at run time, never under mocks. Every
    action on every table, index, parameter and callback ARN the functions are granted must be inside it."""
    allowed = [s for s in statements(named("Permissions boundary")[0]) if s["Effect"] == "Allow"]
    run = shared_run("dev", {"auth": "jwt", "jwtSecret": "s" * 40})
    outside = []
    for resource in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in statements(resource.policy()):
            for action, granted in itertools.product(as_list(statement["Action"]), as_list(statement["Resource"])):
                # The physical name the stack files' autonaming gives (`dev-<logical name>-<hex>`).
                arn = re.sub(r"(:table/|:parameter/|:function:)", r"\1dev-", granted)
                if not any(within(action, arn, boundary) for boundary in allowed):
                    outside.append(f"{resource.name}: {action} on {arn}")
    assert not outside, "granted but outside the boundary: " + "; ".join(outside)


def within(action: str, arn: str, statement: dict[str, Any]) -> bool:
    """Whether an Allow statement of a document in docs/deploy.md covers one action on one ARN of the mocks."""
    resources = [r.replace("REGION", REGION).replace("ACCOUNT_ID", ACCOUNT_ID) for r in as_list(statement["Resource"])]
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in as_list(statement["Action"])) and any(
        fnmatch.fnmatchcase(arn, resource) for resource in resources
    )


CREATED_AS = {
    "aws:iam/role:Role": ("iam:CreateRole", "arn:aws:iam::{account}:role/{name}"),
    "aws:iam/policy:Policy": ("iam:CreatePolicy", "arn:aws:iam::{account}:policy/{name}"),
    "aws:lambda/function:Function": ("lambda:CreateFunction", "arn:aws:lambda:{region}:{account}:function:{name}"),
    "aws:dynamodb/table:Table": ("dynamodb:CreateTable", "arn:aws:dynamodb:{region}:{account}:table/{name}"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs:CreateLogGroup", "arn:aws:logs:{region}:{account}:log-group:{name}"),
    "aws:sns/topic:Topic": ("sns:CreateTopic", "arn:aws:sns:{region}:{account}:{name}"),
    "aws:ssm/parameter:Parameter": ("ssm:PutParameter", "arn:aws:ssm:{region}:{account}:parameter/{name}"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "cloudwatch:PutMetricAlarm",
        "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
    ),
}
"""The action that creates each named resource type, and the ARN IAM checks it on (Service Authorization Reference)."""


def test_the_deploy_role_may_create_every_named_resource_the_program_registers() -> None:
    """A resource type the deploy role cannot create fails `pulumi up` with AccessDenied in CI, never under mocks:
    each registered resource of a type above must be creatable under `dev`'s deploy role, named as the stack files'
    autonaming names it (`dev-<logical name>-<hex>`) unless the program names it."""
    allowed = [
        {**s, "Resource": [r.replace("STACK", "dev").replace("STAGE", "dev") for r in as_list(s["Resource"])]}
        for s in statements(deploy_permissions())
        if s["Effect"] == "Allow"
    ]
    run = run_program("dev", {"auth": "jwt", "jwtSecret": "s" * 40, "executionLoggingLevel": "ERROR"})
    refused = []
    for resource in run.resources:
        if resource.type not in CREATED_AS:
            continue
        action, arn_format = CREATED_AS[resource.type]
        name = resource.inputs.get("name") or f"dev-{resource.name}-1a2b3c4"
        arn = arn_format.format(region=REGION, account=ACCOUNT_ID, name=name)
        if not any(within(action, arn, statement) for statement in allowed):
            refused.append(f"{resource.name}: {action} on {arn}")
    assert not refused, "the deploy role cannot create: " + "; ".join(refused)
