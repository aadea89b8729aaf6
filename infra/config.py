"""The stack's settings, read from Pulumi config and validated by `app.settings` before anything is built."""

from __future__ import annotations

import pulumi

from app.settings import KEYS, PROJECT, SettingsError, StackSettings, parse_settings

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
    values = {key.name: config.get(key.name) for key in KEYS}
    try:
        settings = parse_settings(values, stack)
    except SettingsError as error:
        raise pulumi.RunError(str(error)) from None
    _refuse_unbuilt(settings)
    return settings


def _refuse_unbuilt(settings: StackSettings) -> None:
    defaults = StackSettings(stage_name=settings.stage_name)
    fields = {key.name: key.field for key in KEYS}
    for name in NOT_YET_BUILT:
        field = fields[name]
        if getattr(settings, field) != getattr(defaults, field):
            raise pulumi.RunError(
                f"{PROJECT}:{name} is not supported by this program yet (it belongs to the hardening work, issue 7); "
                "remove it from the stack's config"
            )

