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

Why a marker: a stack that stopped declaring the three after its first `up` showed them as deleted in every PR's
`pulumi preview` that followed (retained, so nothing happened in AWS, but a preview of deletions is a review
blocker). Recognising the role by its name would not do: after `pulumi destroy` the same stack would declare it
again and create a second role (the orphan pile-up aws-devtools-labs/aws-blocks#437 measured: 1,315 of 1,500 roles).
The marker is in Pulumi's state and in AWS at once, so it disappears with the stack, and a stack reading its own
outputs through a StackReference is not an option on a stack's first `up` (pulumi/pulumi#3540, #19202).
"""

from __future__ import annotations

import boto3
import pulumi
import pytest
from moto import mock_aws

from infra.account import PUSH_TO_CLOUDWATCH_POLICY_ARN, read_cloudwatch_role_arn, read_logging_role_marker
from tests.infra.mocks import ProgramError, ProgramRun, RegisteredResource, run_program

ACCOUNT = "aws:apigateway/account:Account"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
STAGE = "aws:apigatewayv2/stage:Stage"
PARAMETER = "aws:ssm/parameter:Parameter"
MARKER = "dev-websocket-chat-api-gateway-logging-role"
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


def test_destroy_keeps_the_role_and_the_setting_and_removes_the_marker(dev_run: ProgramRun) -> None:
    """Retained: destroying one stack (or a later run that no longer declares them) leaves the region logging; the
    marker goes, so the same stack's next `up` shares the role instead of creating another."""
    custom = [resource for resource in logging_resources(dev_run) if resource.custom]
    assert {resource.type for resource in custom} == {ROLE, ATTACHMENT, ACCOUNT, PARAMETER}, f"created: {custom}"
    for resource in custom:
        kept = resource.type != PARAMETER
        assert resource.retain_on_delete == kept, f"{resource}: retain_on_delete is {resource.retain_on_delete}"


def test_the_marker_names_the_role_once_it_is_the_setting(dev_run: ProgramRun) -> None:
    marker = dev_run.one(PARAMETER, "api-gateway-logging-marker")
    assert marker.inputs["name"] == MARKER, f"{marker}: named {marker.inputs['name']}, which the program does not read"
    assert marker.inputs["type"] == "String", f"{marker}: {marker.inputs['type']}"
    assert marker.inputs["insecureValue"] == dev_run.one(ROLE, "api-gateway-logging-role").outputs["arn"], (
        f"{marker}: value"
    )
    assert dev_run.one(ACCOUNT).urn in marker.dependencies, f"{marker}: may name a role before it is the setting"


def declared(run: ProgramRun) -> list[tuple[str, str, str, bool]]:
    """What a preview compares: each logging resource's type, name, inputs and retention."""
    return [(r.type, r.name, repr(sorted(r.inputs.items())), r.retain_on_delete) for r in logging_resources(run)]


def test_a_second_up_of_the_stack_that_created_the_role_changes_nothing(dev_run: ProgramRun) -> None:
    """The marker names the region's role, so the stack declares exactly what its first `up` did: no deletions."""
    role_arn = dev_run.one(ROLE, "api-gateway-logging-role").outputs["arn"]
    again = run_program("dev", account_role=role_arn, role_marker=role_arn)
    assert declared(again) == declared(dev_run), "the second up would delete or change the logging role"
    assert dev_run.one(ACCOUNT).urn in again.one(STAGE).dependencies, "the stage no longer waits for the setting"


def test_an_account_that_has_a_role_is_left_alone() -> None:
    run = run_program("dev", account_role=EXISTING_ROLE)
    assert logging_resources(run) == [], "the program touches an account role that already exists"
    assert run.of_type(STAGE), "no stage"


def test_dev_and_prod_side_by_side_share_the_first_role(dev_run: ProgramRun) -> None:
    """The first stack's `up` creates the role; the second finds it set, has no marker, and creates nothing, so
    destroying either leaves the other logging (the first stack's resources are retained, the second has none)."""
    role_arn = dev_run.one(ROLE, "api-gateway-logging-role").outputs["arn"]
    second = run_program("prod", account_role=role_arn)
    assert logging_resources(second) == [], "the second stack would overwrite or duplicate the account's role"


def test_after_a_destroy_the_stack_shares_the_role_it_created(dev_run: ProgramRun) -> None:
    """Destroyed, the stack lost its marker and kept the role: its next `up` creates no second role."""
    role_arn = dev_run.one(ROLE, "api-gateway-logging-role").outputs["arn"]
    assert logging_resources(run_program("dev", account_role=role_arn)) == [], "a destroyed stack made another role"


def test_a_marker_naming_another_role_leaves_the_setting_to_whoever_changed_it() -> None:
    run = run_program("dev", account_role=EXISTING_ROLE, role_marker="arn:aws:iam::123456789012:role/replaced")
    assert logging_resources(run) == [], "the stack would set its old role over the one someone put in its place"


def test_a_setting_reset_behind_the_stack_says_how_to_set_it_again(caplog: pytest.LogCaptureFixture) -> None:
    run = run_program("dev", role_marker=EXISTING_ROLE)
    assert run.of_type(ACCOUNT), "the stack stopped declaring the setting it manages"
    assert any("pulumi up --refresh" in record.getMessage() for record in caplog.records), (
        "an empty setting the state still records as set would silently stay empty"
    )


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
def test_the_program_reads_the_marker_as_ssm_holds_it() -> None:
    with mock_aws():
        assert read_logging_role_marker("eu-west-1", MARKER) is None, "a missing marker was read as a role"
        boto3.client("ssm", region_name="eu-west-1").put_parameter(Name=MARKER, Value=EXISTING_ROLE, Type="String")
        assert read_logging_role_marker("eu-west-1", MARKER) == EXISTING_ROLE, "the marker was not read"
        assert read_logging_role_marker("us-east-1", MARKER) is None, "a marker of another region was read"


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
    with pytest.raises(pulumi.RunError, match=rf"could not read the SSM parameter {MARKER} in us-east-1.*preflight"):
        read_logging_role_marker("us-east-1", MARKER)
