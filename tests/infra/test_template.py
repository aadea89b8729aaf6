"""Pulumi.yaml's `template:` section, which makes the repository a `pulumi new` template."""

from __future__ import annotations

from typing import Any

import yaml

from app.settings import PROJECT, settings_from_stack_config
from tests.infra.mocks import PROJECT_FILE


def template() -> dict[str, Any]:
    section: dict[str, Any] = yaml.safe_load(PROJECT_FILE.read_text(encoding="utf-8"))["template"]
    return section


def test_the_template_names_itself_and_asks_for_the_region_and_auth() -> None:
    section = template()
    assert section.get("displayName") and section.get("description"), "pulumi new lists templates by these"
    assert {"aws:region", f"{PROJECT}:auth"} <= set(section["config"]), "a new stack must be asked region and auth"
    for key, prompt in section["config"].items():
        assert prompt.get("description"), f"{key}: pulumi new shows the description as the prompt"
        assert "default" in prompt, f"{key}: a default lets a newcomer press Enter"


def test_the_answers_pulumi_new_writes_are_valid_settings() -> None:
    # pulumi new writes every answer as a string, so the defaults must parse from strings as the program reads them.
    answers = {key: str(prompt["default"]) for key, prompt in template()["config"].items()}
    own = [key for key in answers if key.startswith(f"{PROJECT}:")]
    assert all(key == "aws:region" or key in own for key in answers), f"unknown namespaces in {sorted(answers)}"
    settings = settings_from_stack_config(answers, "dev")
    assert settings.auth == answers[f"{PROJECT}:auth"], "the auth answer must reach the settings"
