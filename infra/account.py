"""API Gateway's account-level CloudWatch role, which every WebSocket stage that logs needs (access logs included).

The setting (`cloudwatchRoleArn`) exists once per account and region and is shared by every API there, so this
program treats it as the account's, not the stack's: with `apiGatewayLoggingRole: auto` a stack creates the role and
the setting only when the region has none, and keeps both when it is destroyed or stops declaring them
(`retain_on_delete`). Since provider v6, deleting `aws.apigateway.Account` resets the setting; retaining it is what
lets `dev` and `prod` share a region and either be destroyed while the other keeps logging (docs/first-deploy.md).

The stack that created the role keeps declaring it, so its later runs change nothing: an SSM parameter it owns (not
retained, so `pulumi destroy` removes it) names the role it set. Any other stack, or this one after a destroy, finds
no marker naming the region's role and declares nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pulumi
import pulumi_aws as aws
from botocore.exceptions import BotoCoreError, ClientError

from app.settings import PROJECT, StackSettings
from infra.naming import check_ssm_name
from infra.policies import assume_role_policy

PUSH_TO_CLOUDWATCH_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
"""AWS-managed: what API Gateway needs to create log groups and streams and write to them, nothing else."""

API_GATEWAY_SERVICE = "apigateway.amazonaws.com"

MARKER_NAME = "{stack}-" + PROJECT + "-api-gateway-logging-role"
"""The SSM parameter through which a stack recognises the region's role as its own: read before any resource, so
named by the program (starting with the stack, like every name the deploy role may touch)."""


def marker_name(stack: str) -> str:
    """The name of the parameter that says stack `stack` manages its region's API Gateway logging role."""
    return MARKER_NAME.format(stack=stack)


def read_cloudwatch_role_arn(region: str, profile: str | None = None) -> str | None:
    """The region's API Gateway CloudWatch role ARN (`apigateway:GET` on `/account`); None when unset.

    Reads with the credentials the AWS provider uses: the standard chain, or the stack's `aws:profile`. Raises
    `pulumi.RunError` when the account settings cannot be read, so the program stops before any resource.
    """
    account = _read(
        region, profile, "API Gateway's account settings", lambda session: session.client("apigateway").get_account()
    )
    role_arn = account.get("cloudwatchRoleArn")
    return str(role_arn) if role_arn else None


def read_logging_role_marker(region: str, name: str, profile: str | None = None) -> str | None:
    """The role ARN a stack's marker parameter holds (`ssm:GetParameter`); None when there is no such parameter."""

    def get(session: boto3.session.Session) -> dict[str, Any]:
        client = session.client("ssm")
        try:
            return dict(client.get_parameter(Name=name)["Parameter"])
        except client.exceptions.ParameterNotFound:
            return {}

    value = _read(region, profile, f"the SSM parameter {name}", get).get("Value")
    return str(value) if value else None


def _read(
    region: str, profile: str | None, what: str, call: Callable[[boto3.session.Session], Mapping[str, Any]]
) -> dict[str, Any]:
    """One read with the provider's credentials; `pulumi.RunError` naming `what` when it fails."""
    try:
        return dict(call(boto3.session.Session(profile_name=profile, region_name=region)))
    except (BotoCoreError, ClientError) as error:
        raise pulumi.RunError(
            f"could not read {what} in {region} ({error}); "
            "run `make preflight STACK=<stack>` to check credentials and permissions"
        ) from None


@dataclass(frozen=True)
class AccountLogging:
    """The region's API Gateway logging role as read before the run, and whether this stack declares it."""

    role_arn: str | None
    """The account setting's role (None: the region has none)."""
    managed_here: bool
    """This stack creates the role and the setting, or created them and keeps declaring them (its marker names the
    region's role); False where another stack, another tool or an administrator set it."""


def read_account_logging(settings: StackSettings, region: str, stack: str, profile: str | None) -> AccountLogging:
    """What the stack finds and whether it manages the role, before any resource.

    Raises `pulumi.RunError` when the region has no role and the setting says it is managed elsewhere: every stage
    logs, so CreateStage would fail.
    """
    role_arn = read_cloudwatch_role_arn(region, profile)
    if settings.api_gateway_logging_role == "external":
        if role_arn is None:
            raise pulumi.RunError(
                f"API Gateway has no account-level CloudWatch role in {region}, and {PROJECT}:apiGatewayLoggingRole "
                "is external: ask whoever manages it to set one (aws apigateway update-account --patch-operations "
                "op=replace,path=/cloudwatchRoleArn,value=<role ARN>), or set apiGatewayLoggingRole to auto"
            )
        return AccountLogging(role_arn, managed_here=False)
    check_ssm_name(marker_name(stack), "this stack's logging-role marker would be the SSM parameter")
    marked = read_logging_role_marker(region, marker_name(stack), profile)
    if role_arn is None:
        if marked is not None:
            # Pulumi's state still says the setting is this role, so the run alone would change nothing.
            pulumi.log.warn(
                f"API Gateway's account setting in {region} is empty, although this stack set it to {marked} "
                "(someone or another tool reset it): `pulumi up --refresh` sets it again"
            )
        return AccountLogging(None, managed_here=True)
    return AccountLogging(role_arn, managed_here=marked == role_arn)


@dataclass
class AccountLoggingRoleArgs:
    """Where the setting is made, for the role's description and the marker's name."""

    region: str
    stack: str
    permissions_boundary: str | None


class AccountLoggingRole(pulumi.ComponentResource):
    """A role API Gateway assumes to write CloudWatch Logs, set as the region's account setting; kept on destroy."""

    account: aws.apigateway.Account
    """The account setting: a stage that logs must wait for it."""

    def __init__(self, name: str, args: AccountLoggingRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:AccountLoggingRole", name, None, opts)
        # Kept when the stack is destroyed or stops declaring them: other stacks and APIs in the region log through
        # this role once it is the account's setting.
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)

        self.role = aws.iam.Role(
            f"{name}-role",
            description=(
                f"API Gateway's account-level CloudWatch Logs role in {args.region}, created by {PROJECT} stack "
                f"{args.stack} and shared by every API in the region; kept when that stack is destroyed"
            ),
            assume_role_policy=pulumi.Output.json_dumps(assume_role_policy(API_GATEWAY_SERVICE)),
            permissions_boundary=args.permissions_boundary,
            opts=kept,
        )
        self.attachment = aws.iam.RolePolicyAttachment(
            f"{name}-push-to-cloudwatch",
            role=self.role.name,
            policy_arn=PUSH_TO_CLOUDWATCH_POLICY_ARN,
            opts=kept,
        )
        # UpdateAccount checks that API Gateway can assume the role and write logs; the provider retries while IAM
        # propagates the new role, and the attachment must exist before the first try.
        self.account = aws.apigateway.Account(
            f"{name}-setting",
            cloudwatch_role_arn=self.role.arn,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[self.attachment]),
        )
        # Not retained: once the stack is destroyed, its next `up` shares the role like any other stack's. Written
        # after the setting, so it never names a role that is not the region's.
        self.marker = aws.ssm.Parameter(
            f"{name}-marker",
            name=marker_name(args.stack),
            type="String",
            insecure_value=self.role.arn,
            description=(
                f"Marks API Gateway's CloudWatch Logs role in {args.region} as managed by {PROJECT} stack {args.stack}"
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.account]),
        )
        self.register_outputs({"role_arn": self.role.arn})


def build_account_logging_role(
    name: str,
    *,
    settings: StackSettings,
    logging: AccountLogging,
    region: str,
    stack: str,
    opts: pulumi.ResourceOptions | None = None,
) -> AccountLoggingRole | None:
    """The role, setting and marker when this stack manages the region's role; None when it leaves it alone."""
    if not logging.managed_here:
        return None
    return AccountLoggingRole(
        name,
        AccountLoggingRoleArgs(region=region, stack=stack, permissions_boundary=settings.permissions_boundary_arn),
        opts,
    )
