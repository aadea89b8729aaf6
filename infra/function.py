"""One Lambda function with its own role, log group and code archive."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from app.definition import Function
from app.settings import StackSettings
from infra.policies import assume_role_policy, invoke_policy, tracing_policy

BASIC_EXECUTION_POLICY_ARN = aws.iam.ManagedPolicy.AWS_LAMBDA_BASIC_EXECUTION_ROLE
"""AWS-managed: CloudWatch Logs only (its `*` resource is AWS's, and the function logs to its own group anyway)."""


@dataclass
class ChatFunctionArgs:
    """What to run (definition and archive), how (runtime settings) and with which rights."""

    function: Function
    code: pulumi.Archive
    """The deployment package: `file_archive` of the deterministic zip `infra.archive.write_archive` wrote."""
    code_hash: pulumi.Input[str] | None
    """`infra.archive.content_hash`: unchanged sources leave the function untouched on `pulumi up`; None leaves the
    comparison to Lambda."""
    runtime: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    tracing: bool
    """X-Ray active tracing, with the role's right to write traces."""
    reserved_concurrency: int | None
    permissions_boundary: str | None
    """The managed policy capping the function's role (the stack's `permissionsBoundaryArn`); None for none."""
    """Concurrent executions reserved for (and capping) this function; None shares the account's pool."""
    log_retention_days: int
    environment: Mapping[str, pulumi.Input[str]]
    policy: Mapping[str, Any] | None
    """The inline policy beyond logging (`infra.policies.function_policy`, or the authorizer's read-secret policy); it
    may hold outputs, such as the ARNs it grants on. None when nothing more is needed."""
    description: pulumi.Input[str] | None = None
    """The function's description; the authorizer's carries its secret's version, so a rotation restarts it."""

    @classmethod
    def from_settings(
        cls,
        function: Function,
        settings: StackSettings,
        *,
        code: pulumi.Archive,
        code_hash: pulumi.Input[str] | None,
        environment: Mapping[str, pulumi.Input[str]],
        policy: Mapping[str, Any] | None,
        description: pulumi.Input[str] | None = None,
    ) -> ChatFunctionArgs:
        """One function's arguments, run the way this stack runs every function (runtime, memory, tracing...)."""
        return cls(
            function=function,
            code=code,
            code_hash=code_hash,
            runtime=settings.lambda_runtime,
            architecture=settings.lambda_architecture,
            memory_mb=settings.memory_mb(function.fans_out),
            timeout_seconds=settings.lambda_timeout_seconds,
            tracing=settings.tracing,
            reserved_concurrency=settings.reserved_concurrency,
            permissions_boundary=settings.permissions_boundary_arn,
            log_retention_days=settings.log_retention_days,
            environment=environment,
            policy=policy,
            description=description,
        )


class ChatFunction(pulumi.ComponentResource):
    """A Lambda function whose role can do exactly what its definition lists, logging to a group we own."""

    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    invoke_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ChatFunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ChatFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Created by the program rather than by Lambda on first use, so retention is ours and `pulumi destroy`
        # removes it. The function is pointed at it (logging_config) instead of relying on the /aws/lambda/<name>
        # convention: the function's name is auto-generated, and the group must exist before the function runs.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            retention_in_days=args.log_retention_days,
            opts=child,
        )

        permissions = self._role(name, args)

        self.function = aws.lambda_.Function(
            f"{name}-function",
            role=self.role.arn,
            runtime=args.runtime,
            architectures=[args.architecture],
            handler=args.function.handler,
            description=args.description,
            code=args.code,
            source_code_hash=args.code_hash,
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(args.environment)),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=self.log_group.name),
            tracing_config=tracing_config(args.tracing),
            reserved_concurrent_executions=args.reserved_concurrency,
            # The rights must exist before the first invocation, not merely before the role is referenced.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group, *permissions]),
        )

        if args.function.invokes_itself:
            # After the function, whose ARN it names; until it exists a broadcast posts every part itself.
            aws.iam.RolePolicy(
                f"{name}-invoke-self",
                role=self.role.name,
                policy=pulumi.Output.json_dumps(invoke_policy(self.function.arn)),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.arn = self.function.arn
        self.name = self.function.name
        self.invoke_arn = self.function.invoke_arn
        self.register_outputs({"arn": self.arn, "name": self.name, "invoke_arn": self.invoke_arn})

    def _role(self, name: str, args: ChatFunctionArgs) -> list[pulumi.Resource]:
        """The function's own role: logging, the inline policy its definition asks for, tracing when on.

        Returns the grants the function must wait for.
        """
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.json_dumps(assume_role_policy("lambda.amazonaws.com")),
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        permissions: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-basic-execution",
                role=self.role.name,
                policy_arn=BASIC_EXECUTION_POLICY_ARN,
                opts=child,
            )
        ]
        if args.policy is not None:
            permissions.append(
                aws.iam.RolePolicy(
                    f"{name}-policy",
                    role=self.role.name,
                    policy=pulumi.Output.json_dumps(args.policy),
                    opts=child,
                )
            )
        if args.tracing:
            permissions.append(
                aws.iam.RolePolicy(
                    f"{name}-tracing",
                    role=self.role.name,
                    policy=pulumi.Output.json_dumps(tracing_policy()),
                    opts=child,
                )
            )
        return permissions


def tracing_config(tracing: bool) -> aws.lambda_.FunctionTracingConfigArgs:
    """Active X-Ray tracing, or Lambda's default PassThrough, always spelled out.

    The provider keeps the last mode when the block is left out, so a stack that turns tracing off must say so.
    """
    return aws.lambda_.FunctionTracingConfigArgs(mode="Active" if tracing else "PassThrough")


def file_archive(path: Path) -> pulumi.FileArchive:
    """A zip written by `infra.archive.write_archive`, as a function's code.

    The path is made relative to the project directory (Pulumi's working directory), so state is the same on every
    machine.
    """
    return pulumi.FileArchive(os.path.relpath(path))
