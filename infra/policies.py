"""IAM policy documents as plain dicts, one builder per kind of role: the least privilege is read here.

Values may be Pulumi outputs (ARNs); the components serialize each document once with `pulumi.Output.json_dumps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from app.definition import Function
from handlers import environment

POLICY_VERSION = "2012-10-17"

CONNECTIONS_TABLE_SID = "ConnectionsTable"
CALLBACK_API_SID = "ReplyThroughCallbackApi"
TRACING_SID = "WriteTraces"
INVOKE_SID = "InvokeFunction"

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
    table_arns: Mapping[str, pulumi.Input[str]],
    index_arn: Callable[[str, str], pulumi.Input[str]],
    connections_arn: Callable[[str], pulumi.Output[str]],
) -> dict[str, Any] | None:
    """What one function may do beyond logging, from its definition; None when it needs nothing more.

    - the DynamoDB actions it lists per table, each on that table's ARN only (`table_arns`, keyed like
      `app.definition.TABLES`), or on one index's ARN (`index_arn(table, index)`) where it names an index;
    - `execute-api:ManageConnections` for each callback method it lists, on this API and stage's
      `METHOD/@connections/*` only. `connections_arn(method)` gives that ARN. The trailing `*` is the connection id,
      which is only known at run time; no statement grants `*` as a whole resource.
    """
    statements: list[dict[str, Any]] = []
    grants: dict[tuple[str, str | None], set[str]] = {}
    for access in function.table_access:
        grants.setdefault((access.table, access.index), set()).update(access.actions)
    for (table, index), actions in sorted(grants.items(), key=lambda grant: (grant[0][0], grant[0][1] or "")):
        statements.append(
            {
                "Sid": _table_sid(table, index),
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": table_arns[table] if index is None else index_arn(table, index),
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


def _table_sid(table: str, index: str | None) -> str:
    """`ConnectionsTable` for the connections table (`TABLE_NAME`), `RoomsTable`, `ConnectionsTableByName`..."""
    base = (
        CONNECTIONS_TABLE_SID
        if table == environment.TABLE_NAME
        else "".join(part.capitalize() for part in table.removesuffix("_NAME").split("_"))
    )
    return base + (index or "")


def invoke_policy(function_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Invoke one function, nothing else: what a backend needs for one the stack exports (`publish`), and what a
    broadcast needs to hand parts of a room to invocations of its own function."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": INVOKE_SID, "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": function_arn}
        ],
    }


def tracing_policy() -> dict[str, Any]:
    """The X-Ray write actions active tracing needs, on resource `*`.

    The one `*` resource in our policies: X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level
    permissions (the Service Authorization Reference lists no resource type for them), so nothing narrower exists.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Sid": TRACING_SID, "Effect": "Allow", "Action": list(TRACING_ACTIONS), "Resource": "*"}],
    }
