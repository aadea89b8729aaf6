"""The Pulumi program: read the stack's settings, build the chat backend, export how to reach and watch it."""

import pulumi

from app import definition
from infra import archive
from infra.account import read_account_logging
from infra.chat import ChatBackend, ChatBackendArgs
from infra.config import check_regions, load_region, load_settings, load_token_secret
from infra.naming import check_stack_names

config = pulumi.Config()
settings = load_settings(config, pulumi.get_stack())
region = load_region()
check_regions(settings, region)
token_secret = load_token_secret(config, settings)
# Read before any resource, so a region whose logging role another stack or tool set is left as it is.
account_logging = read_account_logging(settings, region, pulumi.get_stack(), pulumi.Config("aws").get("profile"))
check_stack_names(settings, account_logging.managed_here)

backend = ChatBackend(
    "chat",
    ChatBackendArgs(
        settings=settings,
        tables=definition.TABLES,
        functions=definition.FUNCTIONS,
        routes=definition.ROUTES,
        route_selection_expression=definition.ROUTE_SELECTION_EXPRESSION,
        authorizer=definition.AUTHORIZER,
        authorized_route=definition.AUTHORIZER_ROUTE,
        token_secret=token_secret,
        build_directory=archive.SOURCE_ROOT / "build",
        stack=pulumi.get_stack(),
        region=region,
        account_logging=account_logging,
    ),
)

pulumi.export("apiId", backend.api_id)
pulumi.export("wssUrl", backend.wss_url)
pulumi.export("callbackUrl", backend.callback_url)
pulumi.export("connectionsTable", backend.table_name)
pulumi.export("dashboardUrl", backend.dashboard_url)
pulumi.export("alarmTopicArn", backend.alarm_topic_arn)
# A backend publishes into a room by invoking this function with its own credentials, under this policy.
pulumi.export("publishFunctionName", backend.functions[definition.PUBLISH.name].name)
pulumi.export("publishFunctionArn", backend.functions[definition.PUBLISH.name].arn)
pulumi.export("publishPolicyArn", backend.invoke_policies[definition.PUBLISH.name].arn)
if backend.custom_domain_target is not None:
    # Where to point the custom domain's DNS (a CNAME) when no Route 53 zone is configured to do it.
    pulumi.export("customDomainTarget", backend.custom_domain_target)
