"""The shared runner itself: config assembled as the Pulumi CLI does, and answers that repeat."""

from __future__ import annotations

import pulumi
import pytest

from app import definition
from tests.infra.mocks import ACCOUNT_ID, ProgramRun, run_program, shared_run, stack_config


def test_config_is_project_defaults_then_stack_file_then_overrides() -> None:
    defaults = stack_config("no-such-stack")
    assert defaults["websocket-chat:logRetentionDays"] == "14", "Pulumi.yaml defaults are not applied"
    assert "aws:region" not in defaults, "a stack without a file got a region from somewhere"
    dev = stack_config("dev")
    assert dev["websocket-chat:logRetentionDays"] == "7", "Pulumi.dev.yaml does not override the project default"
    assert dev["aws:region"] == "us-east-1", "Pulumi.dev.yaml's region is missing"
    assert dev["websocket-chat:pointInTimeRecovery"] == "false", "booleans are not written as the CLI writes them"
    overridden = stack_config("dev", {"logRetentionDays": 30, "aws:region": "eu-west-1", "pointInTimeRecovery": None})
    assert overridden["websocket-chat:logRetentionDays"] == "30", "a bare override is not in the project namespace"
    assert overridden["aws:region"] == "eu-west-1", "a namespaced override is not taken as given"
    assert "websocket-chat:pointInTimeRecovery" not in overridden, "None does not remove a key"


def test_answers_are_deterministic_and_in_the_stack_s_region(dev_run: ProgramRun) -> None:
    again = run_program("dev")
    assert {(r.urn, r.id) for r in again} == {(r.urn, r.id) for r in dev_run}, "ids differ between runs"
    function = dev_run.one("aws:lambda/function:Function", "connect-function")
    assert function.outputs["arn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function.outputs['name']}", (
        f"{function}: ARN not in the stack's region and account"
    )
    assert function.outputs["name"].startswith("connect-function-"), f"{function}: not auto-named like Pulumi"


def test_the_token_secret_is_marked_secret_as_the_cli_marks_it() -> None:
    run_program("dev", {"jwtSecret": "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="})
    assert pulumi.runtime.config.is_config_secret("websocket-chat:jwtSecret"), "jwtSecret not secret"
    assert not pulumi.runtime.config.is_config_secret("websocket-chat:logRetentionDays"), "a plain key marked secret"


def test_the_region_the_program_looks_up_is_the_stack_s() -> None:
    run = run_program("dev", {"aws:region": "eu-west-1"})
    assert "region=eu-west-1#" in run.outputs["dashboardUrl"], f"aws.get_region answered {run.outputs['dashboardUrl']}"


def test_a_shared_run_is_one_per_config_and_never_the_unpatched_one_for_a_patched_program(
    dev_run: ProgramRun, prod_run: ProgramRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shared_run("dev", {}) is dev_run, "the same config ran twice"
    assert shared_run("prod") is prod_run is not dev_run, "another stack got the dev run"
    monkeypatch.setattr(definition, "ROUTES", definition.ROUTES[:-1])
    patched = shared_run("dev")
    routes = "aws:apigatewayv2/route:Route"
    assert len(patched.of_type(routes)) == len(dev_run.of_type(routes)) - 1, "a patched definition got the shared run"
