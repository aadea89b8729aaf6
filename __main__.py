"""The Pulumi program: read the stack's settings, build the chat backend, export how to reach it."""

import pulumi

from app import definition
from infra import archive
from infra.chat import ChatBackend, ChatBackendArgs
from infra.config import load_settings

settings = load_settings(pulumi.Config(), pulumi.get_stack())

backend = ChatBackend(
    "chat",
    ChatBackendArgs(
        settings=settings,
        table=definition.CONNECTIONS_TABLE,
        functions=definition.FUNCTIONS,
        routes=definition.ROUTES,
        route_selection_expression=definition.ROUTE_SELECTION_EXPRESSION,
        build_directory=archive.SOURCE_ROOT / "build",
    ),
)

pulumi.export("apiId", backend.api_id)
pulumi.export("wssUrl", backend.wss_url)
pulumi.export("callbackUrl", backend.callback_url)
pulumi.export("connectionsTable", backend.table_name)
