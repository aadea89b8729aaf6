"""Who may connect: the `$connect` REQUEST authorizer checking standard JWTs, and in shared-secret mode its secret.

Built only when the stack's `auth` setting is `jwt` (see `build_token_authorizer`). With `jwtIssuer` the function
checks the issuer's RS256/ES256 tokens against its published keys and needs no secret; without, an SSM SecureString
holds the HS256 secret (`jwtSecret`) and the function may read that one parameter. The `$connect` route then takes
`authorization_type` and `authorizer_id` from this component, and the stage is created after the authorizer and its
invoke permission (it auto-deploys every later change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from app.definition import AUTHORIZER
from app.settings import PROJECT, SECRET_KEY, StackSettings
from handlers import environment
from infra.function import ChatFunction, ChatFunctionArgs
from infra.policies import POLICY_VERSION

MIN_SECRET_BYTES = 32
"""`handlers.tokens.MIN_SECRET_BYTES` (a test keeps them equal), spelt here so the program needs no PyJWT."""

AUTHORIZATION_TYPE = "CUSTOM"
"""A WebSocket route guarded by a Lambda authorizer has authorization type CUSTOM."""

AUTHORIZER_TYPE = "REQUEST"
"""WebSocket APIs support Lambda authorizers of the REQUEST kind only (the whole request, not one token)."""

IDENTITY_SOURCES: list[str] = []
"""None, on purpose. API Gateway answers 401 without invoking the authorizer when ANY listed source is missing, so
listing `route.request.querystring.token` would shut out header and subprotocol users and listing several would demand
all. With no identity source every `$connect` reaches the function, which answers 401 itself when none carries a token
(docs/hardening.md). AWS accepts none on a WebSocket REQUEST authorizer (the provider sends an empty list; its
acceptance test creates one), and caching is not available for WebSocket authorizers, so nothing is lost there."""

READ_SECRET_SID = "ReadTokenSigningSecret"


@dataclass
class TokenAuthorizerArgs:
    """The API to guard, the signing secret, the function's code and the stack's settings."""

    api_id: pulumi.Input[str]
    execution_arn: pulumi.Input[str]
    """`arn:aws:execute-api:{region}:{account}:{api-id}`; the invoke permission is scoped to this API's authorizer."""
    secret: pulumi.Input[str] | None
    """The HS256 secret (Pulumi secret config) in shared-secret mode, stored as an SSM SecureString and never put in
    the environment; None with an issuer."""
    code: pulumi.Archive
    """The authorizer's deployment package (`handlers/authorizer.py` and the modules it imports), usually
    `infra.function.file_archive` of the zip `infra.archive.write_archive` wrote."""
    code_hash: pulumi.Input[str] | None
    """`infra.archive.content_hash`, so unchanged sources leave the function untouched; None to let Lambda tell."""
    settings: StackSettings


class TokenAuthorizer(pulumi.ComponentResource):
    """A Lambda REQUEST authorizer for `$connect` checking JWTs: an issuer's, or HS256 with a secret only it reads."""

    authorizer_id: pulumi.Output[str]
    authorization_type: str
    function_name: pulumi.Output[str]
    parameter_name: pulumi.Output[str] | None
    """The SSM parameter holding the secret; None with an issuer."""

    def __init__(self, name: str, args: TokenAuthorizerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:TokenAuthorizer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        variables, policy, description = self._secret(name, args)
        # A function like every other (log group, role, basic execution, tracing grant, concurrency); in secret mode
        # its one extra right is reading the secret's parameter, with an issuer it has none.
        self.function = ChatFunction(
            name,
            ChatFunctionArgs.from_settings(
                AUTHORIZER,
                args.settings,
                code=args.code,
                code_hash=args.code_hash,
                environment=variables,
                policy=policy,
                description=description,
            ),
            opts=child,
        )

        self.authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-authorizer",
            api_id=args.api_id,
            authorizer_type=AUTHORIZER_TYPE,
            authorizer_uri=self.function.invoke_arn,
            identity_sources=IDENTITY_SOURCES,
            opts=child,
        )

        # Only this API's authorizer may invoke the function: API Gateway calls it with the source ARN
        # `{execution-arn}/authorizers/{authorizer-id}`.
        self.permission = aws.lambda_.Permission(
            f"{name}-permission",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(args.execution_arn, "/authorizers/", self.authorizer.id),
            opts=child,
        )

        self.authorizer_id = self.authorizer.id
        self.authorization_type = AUTHORIZATION_TYPE
        self.function_name = self.function.name
        self.parameter_name = self.parameter.name if self.parameter is not None else None
        self.register_outputs(
            {
                "authorizer_id": self.authorizer_id,
                "function_name": self.function_name,
                "parameter_name": self.parameter_name,
            }
        )

    def _secret(
        self, name: str, args: TokenAuthorizerArgs
    ) -> tuple[dict[str, pulumi.Input[str]], dict[str, Any] | None, pulumi.Input[str]]:
        """The function's environment, extra policy and description; in shared-secret mode also the SSM parameter."""
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        variables = issuer_variables(settings)
        self.parameter: aws.ssm.Parameter | None = None
        policy = None
        description: pulumi.Input[str] = f"WebSocket chat $connect authorizer (JWTs of {settings.jwt_issuer})"
        if settings.jwt_mode == "secret":
            if args.secret is None:
                raise missing_secret_error()
            # SecureString under the account's aws/ssm key, whose key policy already lets this account's principals
            # decrypt through SSM: the role needs no kms:Decrypt statement. The name is auto-generated per stack.
            self.parameter = aws.ssm.Parameter(
                f"{name}-secret",
                type="SecureString",
                description="HS256 secret of the chat's $connect JWTs (set from Pulumi config, do not edit by hand)",
                value=pulumi.Output.secret(args.secret).apply(checked_secret),
                opts=child,
            )
            # The parameter's name only: the secret itself never enters the environment (CKV_AWS_45).
            variables[environment.TOKEN_SECRET_PARAMETER] = self.parameter.name
            policy = read_secret_policy(self.parameter.arn)
            # Warm containers keep the secret they read. A new secret bumps the parameter's version, which changes
            # this description, and a configuration change makes Lambda start fresh containers that read it.
            description = pulumi.Output.concat(
                "WebSocket chat $connect authorizer (HS256 secret version ", self.parameter.version.apply(str), ")"
            )
        return variables, policy, description


def issuer_variables(settings: StackSettings) -> dict[str, pulumi.Input[str]]:
    """The authorizer's environment from the stack's JWT settings (the unset ones are left out)."""
    values = {
        environment.JWT_ISSUER: settings.jwt_issuer,
        environment.JWT_AUDIENCE: settings.jwt_audience,
        environment.JWKS_URL: settings.jwks_url,
        environment.JWT_NAME_CLAIM: settings.jwt_name_claim,
    }
    return {name: value for name, value in values.items() if value is not None}


def read_secret_policy(parameter_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The authorizer's one right beyond logging: read (and decrypt) the signing secret's parameter, nothing else."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": READ_SECRET_SID, "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameter_arn},
        ],
    }


def build_token_authorizer(
    name: str,
    *,
    settings: StackSettings,
    secret: pulumi.Input[str] | None,
    api_id: pulumi.Input[str],
    execution_arn: pulumi.Input[str],
    code: pulumi.Archive,
    code_hash: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions | None = None,
) -> TokenAuthorizer | None:
    """The authorizer when `auth` is `jwt`, None when it is `none`.

    `secret` is `pulumi.Config().get_secret("jwtSecret")`; raises `pulumi.RunError` naming the key when the stack
    has no issuer and the secret is not set.
    """
    if settings.auth != "jwt":
        return None
    if settings.jwt_mode == "secret" and secret is None:
        raise missing_secret_error()
    return TokenAuthorizer(
        name,
        TokenAuthorizerArgs(
            api_id=api_id,
            execution_arn=execution_arn,
            secret=secret,
            code=code,
            code_hash=code_hash,
            settings=settings,
        ),
        opts,
    )


def missing_secret_error() -> pulumi.RunError:
    """The error for `auth` jwt with neither issuer nor secret: names both keys and how to set them."""
    return pulumi.RunError(
        f"{PROJECT}:{SECRET_KEY} is required when {PROJECT}:auth is jwt and no {PROJECT}:jwtIssuer is set; set it "
        f'with `pulumi config set --secret {SECRET_KEY} "$(openssl rand -base64 32)"`, or set jwtIssuer and '
        "jwtAudience to trust an identity provider"
    )


def checked_secret(secret: str) -> str:
    """The secret unchanged, or an error naming the key when it is too short to sign with (the value is not shown)."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise pulumi.RunError(
            f"{PROJECT}:{SECRET_KEY} must be at least {MIN_SECRET_BYTES} bytes; generate one with "
            f'`pulumi config set --secret {SECRET_KEY} "$(openssl rand -base64 32)"`'
        )
    return secret
