"""The pack starts the way Pulumi starts it and answers the engine's Analyze calls.

Pulumi runs a Python policy pack as `python <pack directory>` from some other working directory, reads the port of
the analyzer server from its first line of output and sends it gRPC requests. This test does the same, so an
import that only works from the repository root, or a policy missing from the pack, fails here and not in CI's
first `pulumi preview`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import pytest
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

PACK = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A stub talking to the pack's analyzer server, started from an unrelated directory."""
    process = subprocess.Popen(
        [sys.executable, str(PACK)],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().strip()
        if not first_line.isdigit():
            process.kill()
            _, errors = process.communicate(timeout=30)
            pytest.fail(f"the policy pack did not start: first line {first_line!r}, stderr:\n{errors}")
        channel = grpc.insecure_channel(f"127.0.0.1:{first_line}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_importing_the_rules_starts_no_server() -> None:
    # PolicyPack() prints a port and serves forever; only `python policy/` may construct it.
    result = subprocess.run(
        [sys.executable, "-c", "import policy, policy.rules, policy.pack, policy.iam, policy.runtimes"],
        cwd=PACK.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "", (
        f"importing the policy modules did more than import: rc={result.returncode} out={result.stdout!r} "
        f"err={result.stderr!r}"
    )


def analyze(stub: Any, resource_type: str, props: dict[str, Any]) -> list[Any]:
    """The diagnostics the pack returns for one resource."""
    name = "resource"
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type, urn=f"urn:pulumi:dev::websocket-chat::{resource_type}::{name}", name=name
    )
    request.properties.update(props)
    return list(stub.Analyze(request, timeout=30).diagnostics)


def test_mandatory_violation_reaches_the_engine(analyzer: Any) -> None:
    diagnostics = analyze(
        analyzer,
        "aws:lambda/permission:Permission",
        {
            "action": "lambda:InvokeFunction",
            "function": "connect",
            "principal": "apigateway.amazonaws.com",
        },
    )
    by_policy = {diagnostic.policyName: diagnostic for diagnostic in diagnostics}
    assert "lambda-permission-source-arn" in by_policy, f"no source-ARN violation reported: {diagnostics}"
    violation = by_policy["lambda-permission-source-arn"]
    assert violation.enforcementLevel == analyzer_pb2.MANDATORY, f"not mandatory: {violation}"
    assert violation.policyPackName == "websocket-chat-guard-rails", f"wrong pack name: {violation.policyPackName}"
    assert "set source_arn" in violation.message, f"message does not say how to fix it: {violation.message}"


def test_advisory_violation_does_not_block(analyzer: Any) -> None:
    diagnostics = analyze(analyzer, "aws:dynamodb/table:Table", {"hashKey": "ConnectionId"})
    levels = {diagnostic.policyName: diagnostic.enforcementLevel for diagnostic in diagnostics}
    assert levels == {"dynamodb-point-in-time-recovery": analyzer_pb2.ADVISORY}, f"unexpected: {levels}"


def test_compliant_resource_gets_no_diagnostics(analyzer: Any) -> None:
    diagnostics = analyze(analyzer, "aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/x", "retentionInDays": 14})
    assert diagnostics == [], f"a log group with retention was reported: {diagnostics}"


def test_stack_policy_reaches_the_engine(analyzer: Any) -> None:
    function_urn = "urn:pulumi:dev::websocket-chat::aws:lambda/function:Function::connect-function"
    function = analyzer_pb2.AnalyzerResource(
        type="aws:lambda/function:Function", urn=function_urn, name="connect-function"
    )
    function.properties.update({"name": "connect-function-fcb5937", "runtime": "python3.13"})
    diagnostics = list(
        analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[function]), timeout=30).diagnostics
    )
    assert [(d.policyName, d.urn, d.enforcementLevel) for d in diagnostics] == [
        ("lambda-logs-in-managed-log-group", function_urn, analyzer_pb2.MANDATORY)
    ], f"a function logging to an unmanaged group was not stopped: {diagnostics}"
