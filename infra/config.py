"""The stack's settings, read from Pulumi config and validated by `app.settings` before anything is built."""

from __future__ import annotations

import pulumi

from app.settings import KEYS, PROJECT, SECRET_KEYS, SettingsError, StackSettings, parse_settings

NOT_YET_BUILT: tuple[str, ...] = (
    "auth",
    "customDomainName",
    "certificateArn",
    "hostedZoneId",
    "alarmEmail",
    "alarmFunctionErrors",
    "alarmFunctionThrottles",
    "alarmApiErrors",
    "tracing",
    "reservedConcurrency",
)
"""Settings of the hardening work (issue 7) that this program does not deploy yet.

`app.settings` already accepts them; setting one to anything but its default would otherwise be ignored without a
word, so the program refuses it instead. Each entry leaves this tuple when the feature it configures is built.
"""


def load_settings(config: pulumi.Config, stack: str) -> StackSettings:
    """Every setting of `app.settings.KEYS` from the stack's config; a bad value stops the program.

    Raises `pulumi.RunError` (printed by the CLI as one line, without a traceback) naming the key.
    """
    # Secret values are never read here: they are not settings, and reading one as plain text would leak it.
    names = _configured_names(config) - set(SECRET_KEYS)
    values: dict[str, str | None] = {name: config.get(name) for name in names}
    values.update({key.name: config.get(key.name) for key in KEYS})
    try:
        settings = parse_settings(values, stack)
    except SettingsError as error:
        raise pulumi.RunError(str(error)) from None
    _refuse_unbuilt(settings)
    return settings


def _configured_names(config: pulumi.Config) -> set[str]:
    """Bare names of every key set in this project's namespace, so that a misspelt key is reported, not ignored.

    The SDK has no public way to list config keys; these are the two places it reads them from (values set by the
    language host, and the `PULUMI_CONFIG` environment variable).
    """
    prefix = f"{config.name}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return {key[len(prefix):] for key in keys if key.startswith(prefix)}


def _refuse_unbuilt(settings: StackSettings) -> None:
    defaults = StackSettings(stage_name=settings.stage_name)
    fields = {key.name: key.field for key in KEYS}
    offending = [
        f"{PROJECT}:{name}"
        for name in NOT_YET_BUILT
        if getattr(settings, fields[name]) != getattr(defaults, fields[name])
    ]
    if offending:
        raise pulumi.RunError(
            f"{', '.join(offending)} {'is' if len(offending) == 1 else 'are'} not supported by this program yet "
            "(the hardening work, issue 7, adds them); remove from the stack's config"
        )
