"""Physical names under the stack files' `pulumi:autonaming` pattern fit AWS's length limits, or the program stops.

With a pattern, pulumi-terraform-bridge takes the engine's proposed name as it is and fails that resource's check when
the name is over the provider's limit ("calculated name ... exceeds maximum length of 64",
pulumi/pulumi-terraform-bridge `info.ComputeAutoNameDefault`; pulumi-aws `provider/resources.go`: `aws_iam_role`
`AutoName("name", 64, "-")`, `aws_lambda_function` `AutoName("name", 64, "-")`, `aws_lambda_permission`
`AutoName("statementId", 100, "-")`). The deploy workflow runs `pulumi up` through the Automation API, which skips
the preview, so that check failed after other resources had been created. Pattern syntax: pulumi/docs
`content/docs/iac/concepts/resources/names.md` ("Configuring Auto-Naming").
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from app import definition
from infra import naming
from infra.naming import NamingContext, check_name_lengths, name_length, pattern_for, planned_names
from tests.infra.mocks import REPOSITORY, ProgramError, run_program, shared_run

STACK_FILE_AUTONAMING: dict[str, Any] = yaml.safe_load((REPOSITORY / "Pulumi.dev.yaml").read_text())["config"][
    "pulumi:autonaming"
]
LONG_STACK = "feature-rooms-and-presence-eu-x1"
"""32 characters: one too many for `{stack}-api-gateway-logging-role-{hex(7)}` in IAM's 64."""
ROLE_ARN = "arn:aws:iam::123456789012:role/central-apigateway-logs"
SECRET = "s" * 40


def autonaming_override(stack_file: str = "dev") -> dict[str, str]:
    """The stack file's `pulumi:autonaming`, as an override for a stack that has no file of its own."""
    config = yaml.safe_load((REPOSITORY / f"Pulumi.{stack_file}.yaml").read_text())["config"]
    return {"pulumi:autonaming": json.dumps(config["pulumi:autonaming"])}


def test_both_stack_files_use_the_pattern_these_tests_measure() -> None:
    for stack in ("dev", "prod"):
        assert autonaming_override(stack) == autonaming_override("dev"), f"Pulumi.{stack}.yaml autonaming differs"
    assert STACK_FILE_AUTONAMING == {"pattern": "${stack}-${name}-${hex(7)}"}


def test_a_stack_name_that_pushes_the_logging_role_over_64_stops_before_any_resource() -> None:
    with pytest.raises(ProgramError) as raised:
        run_program(LONG_STACK, autonaming_override())
    assert isinstance(raised.value.error, pulumi.RunError), raised.value.error
    message = str(raised.value.error)
    assert "api-gateway-logging-role" in message and "limit of 64 for IAM role names" in message, message
    assert "at most 31 characters" in message, message
    created = [resource.urn for resource in raised.value.resources if resource.custom]
    assert created == [], f"registered before the check: {created}"


def test_the_same_stack_name_deploys_where_the_region_already_has_a_logging_role() -> None:
    run = run_program(LONG_STACK, autonaming_override(), account_role=ROLE_ARN)
    longest = max((resource.outputs.get("name", "") for resource in run.of_type(naming.ROLE)), key=len)
    assert longest, "no role registered"


def test_without_a_pattern_a_long_stack_name_is_left_to_the_provider() -> None:
    # Default auto-naming shortens the logical name to the limit, so nothing can be too long.
    run_program(LONG_STACK)


@pytest.mark.parametrize("stack", ["dev", "prod", "staging-eu"])
def test_plausible_stack_names_fit_every_limit_with_everything_on(stack: str) -> None:
    names = planned_names(definition.FUNCTIONS, definition.ROUTES, definition.AUTHORIZER, True)
    check_name_lengths(STACK_FILE_AUTONAMING, NamingContext(stack, "websocket-chat", "organization"), names)


def test_planned_names_cover_every_limited_resource_the_program_registers() -> None:
    """The check measures the names the components really use: auth on, a fresh account (every limited name)."""
    run = shared_run("dev", {"auth": "jwt", "jwtSecret": SECRET})
    planned = set(planned_names(definition.FUNCTIONS, definition.ROUTES, definition.AUTHORIZER, True))
    registered = {(resource.type, resource.name) for resource in run.resources if resource.type in naming.NAME_LIMITS}
    assert registered, "no limited resource registered"
    assert registered <= planned, f"registered but not measured: {sorted(registered - planned)}"


def test_the_most_specific_level_of_the_autonaming_config_applies() -> None:
    autonaming = {
        "pattern": "${name}-${hex(8)}",
        "providers": {"aws": {"pattern": "${stack}-${name}", "resources": {naming.ROLE: {"mode": "verbatim"}}}},
    }
    assert pattern_for(autonaming, naming.ROLE) == "${name}"
    assert pattern_for(autonaming, naming.FUNCTION) == "${stack}-${name}"
    assert pattern_for({"pattern": "${name}-${hex(8)}"}, naming.FUNCTION) == "${name}-${hex(8)}"
    assert pattern_for({"mode": "default"}, naming.ROLE) is None


def test_name_length_counts_every_expression_and_gives_up_on_unknown_ones() -> None:
    context = NamingContext("prod", "websocket-chat", "acme")
    assert name_length("${organization}_${project}-${stack}-${name}-${alphanum(4)}", "x-role", context) == 36
    assert name_length("${uuid}", "x", context) == 36
    assert name_length("${config.region}-${name}", "x", context) is None


def test_a_pattern_without_the_stack_says_to_shorten_the_pattern() -> None:
    with pytest.raises(pulumi.RunError, match="limit of 64 for Lambda function names: use a shorter pattern"):
        check_name_lengths(
            {"pattern": "${name}-${hex(50)}"},
            NamingContext("dev", "websocket-chat", "organization"),
            [(naming.FUNCTION, "send-message-function")],
        )


def test_a_dot_in_the_stack_name_is_refused_for_lambda_names() -> None:
    """Pulumi stack names may hold `.`; Lambda function names and statement ids may not (`[a-zA-Z0-9-_]+`, the
    Lambda API's FunctionName and StatementId patterns in botocore's model), while IAM role names may."""
    context = NamingContext("prod.eu", "websocket-chat", "organization")
    with pytest.raises(pulumi.RunError, match=r"puts 'prod.eu' in Lambda function names, which refuse '\.'"):
        check_name_lengths(STACK_FILE_AUTONAMING, context, [(naming.FUNCTION, "connect-function")])
    check_name_lengths(STACK_FILE_AUTONAMING, context, [(naming.ROLE, "connect-role")])


@pytest.mark.parametrize("stack", ["aws-dev", "SSMtest"])
def test_a_stack_name_ssm_would_refuse_stops_before_any_resource(stack: str) -> None:
    # PutParameter: "A parameter name can't be prefixed with 'aws' or 'ssm' (case-insensitive)"; the marker and
    # the JWT secret's parameter both start with the stack name.
    with pytest.raises(ProgramError) as raised:
        run_program(stack, autonaming_override())
    message = str(raised.value.error)
    assert isinstance(raised.value.error, pulumi.RunError) and "logging-role marker" in message, message
    assert f"'{stack}-websocket-chat-api-gateway-logging-role'" in message and "SSM refuses" in message, message
    assert [resource.urn for resource in raised.value.resources if resource.custom] == [], "registered before the check"


def test_the_jwt_secrets_parameter_name_is_checked_under_the_pattern_too() -> None:
    overrides = {**autonaming_override(), "apiGatewayLoggingRole": "external", "auth": "jwt", "jwtSecret": SECRET}
    with pytest.raises(ProgramError) as raised:
        run_program("ssm-lab", overrides, account_role=ROLE_ARN)
    message = str(raised.value.error)
    assert "names the JWT secret's parameter 'ssm-lab-authorizer-secret-x'" in message, message
    run_program("lab-ssm", overrides, account_role=ROLE_ARN)  # only a prefix is refused
