"""API Gateway's account-level CloudWatch role: created on a fresh account, left alone where one exists, kept on
destroy, and never touched when the setting says it is managed elsewhere.

Why the stack manages it at all: on a WebSocket stage, access logs alone need the account's `cloudwatchRoleArn`;
without it CreateStage fails with `BadRequestException: CloudWatch Logs role ARN must be set in account settings to
enable logging` (anomalyco/sst#1556, #2354, anomalyco/ion#373; /work/shared/reference/apigw-websocket.md).

Why `retain_on_delete`: the setting is one per account and region. Since terraform-provider-aws v6 (pulumi-aws v7,
the provider this program pins) deleting `aws_api_gateway_account` resets it to empty (hashicorp/terraform-provider-
aws#42226 removed `reset_on_delete` and made resetting the only behaviour; the installed `AccountArgs` has no
`reset_on_delete`; the v6 resource's Delete patches `/cloudwatchRoleArn` to ""), and SST met the resulting pile-up
of orphan roles (anomalyco/sst#6911, fixed by retaining it). The v6 resource's Create retries UpdateAccount on
"The role ARN does not have required permissions" for IAM's propagation timeout, which is what keeps a role seconds
old from failing the first `up`; the attachment must exist first, hence the dependency tested below.
Retaining the role, its policy attachment and the setting means `pulumi destroy` of `dev` leaves `prod`, and every
other API of the region, logging.
"""

from __future__ import annotations

import boto3
import pulumi
import pytest
from moto import mock_aws

from infra.account import PUSH_TO_CLOUDWATCH_POLICY_ARN, read_cloudwatch_role_arn
from tests.infra.mocks import ProgramError, ProgramRun, RegisteredResource, run_program

ACCOUNT = "aws:apigateway/account:Account"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
STAGE = "aws:apigatewayv2/stage:Stage"
EXISTING_ROLE = "arn:aws:iam::123456789012:role/company-apigateway-cloudwatch"


def logging_resources(run: ProgramRun) -> list[RegisteredResource]:
    return [resource for resource in run.resources if resource.name.startswith("api-gateway-logging")]


def test_a_fresh_account_gets_the_role_with_the_managed_policy_set_as_the_account_setting(dev_run: ProgramRun) -> None:
    role = dev_run.one(ROLE, "api-gateway-logging-role")
    trust = role.policy("assumeRolePolicy")["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ], f"{role}: trusts {trust}"
    attachment = dev_run.one(ATTACHMENT, "api-gateway-logging-push-to-cloudwatch")
    assert attachment.inputs["policyArn"] == PUSH_TO_CLOUDWATCH_POLICY_ARN, f"{attachment}: another policy"
    assert attachment.inputs["role"] == role.outputs["name"], f"{attachment}: on another role"
    account = dev_run.one(ACCOUNT)
    assert account.inputs["cloudwatchRoleArn"] == role.outputs["arn"], f"{account}: sets another role"
    # UpdateAccount checks the role can write logs: the policy must be attached before the setting is made.
    assert attachment.urn in account.dependencies, f"{account}: set before the role may write logs"


def test_the_stage_waits_for_the_account_setting(dev_run: ProgramRun) -> None:
    stage = dev_run.one(STAGE)
    assert dev_run.one(ACCOUNT).urn in stage.dependencies, f"{stage}: may be created before the account's role is set"


def test_destroy_keeps_the_role_and_the_setting(dev_run: ProgramRun) -> None:
    """Retained: destroying one stack (or a later run that no longer declares them) leaves the region logging."""
    created = logging_resources(dev_run)
    custom = [resource for resource in created if resource.custom]
    assert {resource.type for resource in custom} == {ROLE, ATTACHMENT, ACCOUNT}, f"created: {custom}"
    for resource in custom:
        assert resource.retain_on_delete, f"{resource}: `pulumi destroy` would delete (or reset) it"


def test_an_account_that_has_a_role_is_left_alone() -> None:
    run = run_program("dev", account_role=EXISTING_ROLE)
    assert logging_resources(run) == [], "the program touches an account role that already exists"
    assert run.of_type(STAGE), "no stage"


def test_dev_and_prod_side_by_side_share_the_first_role() -> None:
    """The first stack's `up` creates the role; the second finds it set and creates nothing, so destroying either
    leaves the other logging (the first stack's resources are retained, the second has none)."""
    first = run_program("dev")
    role_arn = first.one(ROLE, "api-gateway-logging-role").outputs["arn"]
    second = run_program("prod", account_role=role_arn)
    assert logging_resources(second) == [], "the second stack would overwrite or duplicate the account's role"
    # The first stack's next `up` sees its own role set: it stops declaring the retained resources, which stay.
    again = run_program("dev", account_role=role_arn)
    assert logging_resources(again) == [], "a second up keeps declaring what it would otherwise reset on destroy"


def test_managed_elsewhere_never_touches_the_account() -> None:
    run = run_program("dev", {"apiGatewayLoggingRole": "external"}, account_role=EXISTING_ROLE)
    assert logging_resources(run) == [], "apiGatewayLoggingRole external still manages the role"


def test_managed_elsewhere_but_missing_stops_before_any_resource() -> None:
    with pytest.raises(ProgramError, match=r"no account-level CloudWatch role in us-east-1.*external") as raised:
        run_program("dev", {"apiGatewayLoggingRole": "external"})
    assert "update-account" in str(raised.value), "the error does not say how to set the role"


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("fake_credentials")
def test_the_program_reads_the_account_setting_as_api_gateway_reports_it() -> None:
    with mock_aws():
        assert read_cloudwatch_role_arn("eu-west-1") is None, "a fresh account reported a role"
        boto3.client("apigateway", region_name="eu-west-1").update_account(
            patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": EXISTING_ROLE}]
        )
        assert read_cloudwatch_role_arn("eu-west-1") == EXISTING_ROLE, "the setting was not read"


@pytest.mark.usefixtures("fake_credentials")
def test_an_unreadable_account_setting_stops_the_program_with_the_way_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(pulumi.RunError, match=r"could not read API Gateway's account settings in us-east-1.*preflight"):
        read_cloudwatch_role_arn("us-east-1")
    with pytest.raises(pulumi.RunError, match="could not read"):
        read_cloudwatch_role_arn("us-east-1", profile="no-such-profile")
