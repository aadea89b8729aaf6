"""IAM policy documents as plain dicts, one builder per kind of role: the least privilege is read here.

Values may be Pulumi outputs (ARNs); the components serialize each document once with `pulumi.Output.json_dumps`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from app.definition import Function

POLICY_VERSION = "2012-10-17"

CONNECTIONS_TABLE_SID = "ConnectionsTable"
CALLBACK_API_SID = "ReplyThroughCallbackApi"
TRACING_SID = "WriteTraces"

TRACING_ACTIONS = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
"""What Lambda's active tracing needs from the function's role (the write half of AWSXRayDaemonWriteAccess; the
handlers use no X-Ray SDK, so the sampling-rule reads of that managed policy are left out)."""


def assume_role_policy(service: str) -> dict[str, Any]:
    """Trust policy letting one AWS service (e.g. `lambda.amazonaws.com`) assume the role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"},
        ],
    }


def function_policy(
    function: Function,
    table_arn: pulumi.Input[str],
    connections_arn: Callable[[str], pulumi.Output[str]],
) -> dict[str, Any] | None:
    """What one function may do beyond logging, from its definition; None when it needs nothing more.

    - the table actions it lists, on the connections table only;
    - `execute-api:ManageConnections` for each callback method it lists, on this API and stage's
      `METHOD/@connections/*` only. `connections_arn(method)` gives that ARN. The trailing `*` is the connection id,
      which is only known at run time; no statement grants `*` as a whole resource.
    """
    statements: list[dict[str, Any]] = []
    if function.table_actions:
        statements.append(
            {
                "Sid": CONNECTIONS_TABLE_SID,
                "Effect": "Allow",
                "Action": sorted(function.table_actions),
                "Resource": table_arn,
            }
        )
    if function.callback_methods:
        statements.append(
            {
                "Sid": CALLBACK_API_SID,
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": [connections_arn(method) for method in sorted(function.callback_methods)],
            }
        )
    if not statements:
        return None
    return {"Version": POLICY_VERSION, "Statement": statements}


def tracing_policy() -> dict[str, Any]:
    """The X-Ray write actions active tracing needs, on resource `*`.

    The one `*` resource in our policies: X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level
    permissions (the Service Authorization Reference lists no resource type for them), so nothing narrower exists.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Sid": TRACING_SID, "Effect": "Allow", "Action": list(TRACING_ACTIONS), "Resource": "*"}],
    }
