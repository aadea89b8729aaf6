"""What preflight needs to know about a stack: its settings, region and which secrets its config holds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app import definition
from app.settings import PROJECT, SECRET_KEYS, SettingsError, StackSettings, settings_from_stack_config

REPOSITORY = Path(__file__).resolve().parents[1]


class StackError(Exception):
    """The stack cannot be checked: no config file, an invalid setting, no region (exit status 2)."""


@dataclass(frozen=True)
class Stack:
    """One stack's validated settings, its region and the secret keys set in its config."""

    name: str
    settings: StackSettings
    region: str
    secrets_set: frozenset[str]

    @property
    def function_count(self) -> int:
        """Functions the stack deploys: one per route function, plus the authorizer when auth is on."""
        return len(definition.FUNCTIONS) + (0 if self.settings.auth == "none" else 1)

    def required_secrets(self) -> tuple[str, ...]:
        """The secret settings the stack's auth mode needs (`app.settings.SECRET_KEYS` in shared-secret mode)."""
        return SECRET_KEYS if self.settings.jwt_mode == "secret" else ()


def load_stack(name: str, repository: Path = REPOSITORY) -> Stack:
    """Read and validate `Pulumi.<name>.yaml` as the program would; raise `StackError` naming the problem."""
    path = repository / f"Pulumi.{name}.yaml"
    if not path.is_file():
        raise StackError(f"no {path.name}: create the stack's config first (`pulumi stack init {name}`)")
    config: dict[str, Any] = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    try:
        settings = settings_from_stack_config(config, name)
    except SettingsError as error:
        raise StackError(str(error)) from None
    region = config.get("aws:region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise StackError(f"no region: set aws:region in {path.name} (`pulumi config set aws:region <region>`)")
    prefix = f"{PROJECT}:"
    secrets = frozenset(
        key[len(prefix) :] for key in config if key.startswith(prefix) and key[len(prefix) :] in SECRET_KEYS
    )
    return Stack(name=name, settings=settings, region=str(region), secrets_set=secrets)
