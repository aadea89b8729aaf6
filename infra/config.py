"""The stack's settings, read from Pulumi config and validated by `app.settings` before anything is built."""

from __future__ import annotations

import os
import re

import pulumi

from app.settings import KEYS, PROJECT, SECRET_KEY, SECRET_KEYS, SettingsError, StackSettings, parse_settings
from infra.authorization import checked_secret, missing_secret_error


def load_settings(config: pulumi.Config, stack: str) -> StackSettings:
    """Every setting of `app.settings.KEYS` from the stack's config; a bad value stops the program.

    Raises `pulumi.RunError` (printed by the CLI as one line, without a traceback) naming the key.
    """
    # Secret values are never read here: they are not settings, and reading one as plain text would leak it.
    names = _configured_names(config) - set(SECRET_KEYS)
    values: dict[str, str | None] = {name: config.get(name) for name in names}
    values.update({key.name: config.get(key.name) for key in KEYS})
    try:
        return parse_settings(values, stack)
    except SettingsError as error:
        raise pulumi.RunError(str(error)) from None


def load_region(config: pulumi.Config | None = None) -> str:
    """The stack's AWS region: `aws:region`, else the environment the provider falls back to.

    Raises `pulumi.RunError` when neither names one.
    """
    region = (config or pulumi.Config("aws")).get("region") or os.environ.get("AWS_REGION")
    region = region or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise pulumi.RunError("no AWS region: set one with `pulumi config set aws:region <region>`")
    return region


def check_regions(settings: StackSettings, region: str) -> None:
    """Refuse ARNs of another region than the stack's, naming the key, before any resource is registered.

    A regional custom domain (the only kind WebSocket APIs have) needs its ACM certificate in the API's region, and
    DynamoDB encrypts only with a KMS key of the table's region.
    """
    for name, arn in (("certificateArn", settings.certificate_arn), ("tableKmsKeyArn", settings.table_kms_key_arn)):
        if arn is None:
            continue
        match = re.match(r"arn:aws[a-z-]*:[a-z]+:([a-z0-9-]+):", arn)
        if match and match[1] != region:
            raise pulumi.RunError(
                f"{PROJECT}:{name} is in {match[1]}, but the stack deploys to {region}: it must be in {region} "
                f"(request or import the {'certificate' if name == 'certificateArn' else 'key'} there)"
            )


def load_token_secret(config: pulumi.Config, settings: StackSettings) -> pulumi.Output[str] | None:
    """The HS256 secret (a Pulumi secret output) in `auth: jwt`'s shared-secret mode; None otherwise.

    Raises `pulumi.RunError` naming the key (never showing the value) when the secret is needed and unset or too
    short to sign with, or set beside an issuer, so the program stops before any resource is registered.
    """
    if settings.jwt_mode != "secret":
        if settings.jwt_mode == "issuer" and config.get_secret(SECRET_KEY) is not None:
            raise pulumi.RunError(
                f"{config.name}:{SECRET_KEY} is set but so is {config.name}:jwtIssuer: tokens are trusted either by "
                f"the issuer's keys or by a shared secret, not both; remove one"
            )
        return None
    secret = config.get_secret(SECRET_KEY)
    if secret is None:
        raise missing_secret_error()
    # The CLI hands the program its config decrypted, so the length can be checked now rather than inside an output,
    # where the failure would surface only after resources were registered. Only the length is looked at.
    checked_secret(config.get(SECRET_KEY) or "")
    return secret


def _configured_names(config: pulumi.Config) -> set[str]:
    """Bare names of every key set in this project's namespace, so that a misspelt key is reported, not ignored.

    The SDK has no public way to list config keys; these are the two places it reads them from (values set by the
    language host, and the `PULUMI_CONFIG` environment variable).
    """
    prefix = f"{config.name}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return {key[len(prefix) :] for key in keys if key.startswith(prefix)}
