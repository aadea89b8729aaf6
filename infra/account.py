"""API Gateway's account-level CloudWatch role, which every WebSocket stage that logs needs (access logs included).

The setting (`cloudwatchRoleArn`) exists once per account and region and is shared by every API there, so this
program treats it as the account's, not the stack's: with `apiGatewayLoggingRole: auto` a stack creates the role and
the setting only when the region has none, and keeps both when it is destroyed or stops declaring them
(`retain_on_delete`). Since provider v6, deleting `aws.apigateway.Account` resets the setting; retaining it is what
lets `dev` and `prod` share a region and either be destroyed while the other keeps logging (docs/first-deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pulumi
import pulumi_aws as aws
from botocore.exceptions import BotoCoreError, ClientError

from app.settings import PROJECT, StackSettings
from infra.policies import assume_role_policy

PUSH_TO_CLOUDWATCH_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
"""AWS-managed: what API Gateway needs to create log groups and streams and write to them, nothing else."""

API_GATEWAY_SERVICE = "apigateway.amazonaws.com"


def read_cloudwatch_role_arn(region: str, profile: str | None = None) -> str | None:
    """The region's API Gateway CloudWatch role ARN (`apigateway:GET` on `/account`); None when unset.

    Reads with the credentials the AWS provider uses: the standard chain, or the stack's `aws:profile`. Raises
    `pulumi.RunError` when the account settings cannot be read, so the program stops before any resource.
    """
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        account = session.client("apigateway").get_account()
    except (BotoCoreError, ClientError) as error:
        raise pulumi.RunError(
            f"could not read API Gateway's account settings in {region} ({error}); "
            "run `make preflight STACK=<stack>` to check credentials and permissions"
        ) from None
    role_arn = account.get("cloudwatchRoleArn")
    return str(role_arn) if role_arn else None


@dataclass
class AccountLoggingRoleArgs:
    """Where the setting is made, for the role's description."""

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
        self.register_outputs({"role_arn": self.role.arn})


def build_account_logging_role(
    name: str,
    *,
    settings: StackSettings,
    current_role_arn: str | None,
    region: str,
    stack: str,
    opts: pulumi.ResourceOptions | None = None,
) -> AccountLoggingRole | None:
    """The role and setting when the region lacks them and the stack may create them; None when there is nothing to do.

    Raises `pulumi.RunError` before any resource when the region has no role and the setting says it is managed
    elsewhere: every stage logs, so CreateStage would fail.
    """
    if current_role_arn is not None:
        return None
    if settings.api_gateway_logging_role == "external":
        raise pulumi.RunError(
            f"API Gateway has no account-level CloudWatch role in {region}, and {PROJECT}:apiGatewayLoggingRole is "
            "external: ask whoever manages it to set one (aws apigateway update-account --patch-operations "
            "op=replace,path=/cloudwatchRoleArn,value=<role ARN>), or set apiGatewayLoggingRole to auto"
        )
    return AccountLoggingRole(
        name,
        AccountLoggingRoleArgs(region=region, stack=stack, permissions_boundary=settings.permissions_boundary_arn),
        opts,
    )
