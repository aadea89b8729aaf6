"""The connections table: on an embedded moto server by default, or on any DynamoDB-compatible endpoint.

The table is created from `app.definition.CONNECTIONS_TABLE` (hash key and TTL attribute), the same definition
the Pulumi program builds the real table from, under a Pulumi-style auto-generated name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.server import ThreadedMotoServer

from app.definition import Table
from emulator.config import EmulatorConfigError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

THROWAWAY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator",
                         "AWS_SESSION_TOKEN": "emulator"}
"""Credentials for the local endpoints: never real, so nothing local can reach an AWS account."""


@dataclass
class LocalTable:
    """A created table and where it lives."""

    endpoint: str
    name: str
    region: str
    server: ThreadedMotoServer | None

    def client(self) -> DynamoDBClient:
        """A boto3 DynamoDB client for this endpoint, with the throwaway credentials."""
        return boto3.client(
            "dynamodb", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=THROWAWAY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=THROWAWAY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=THROWAWAY_CREDENTIALS["AWS_SESSION_TOKEN"],
            # Local endpoints answer at once or not at all: fail fast on a wrong --dynamodb-endpoint.
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5),
        )

    def close(self) -> None:
        """Delete the table from an external endpoint (it was ours), or stop the embedded server."""
        if self.server is not None:
            self.server.stop()
        else:
            self.client().delete_table(TableName=self.name)


def start_table(table: Table, name: str, region: str, endpoint: str | None) -> LocalTable:
    """Start moto on loopback unless `endpoint` is given, then create the table there."""
    server = None
    if endpoint is None:
        # werkzeug logs every request at INFO; the emulator logs invocations itself.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    local = LocalTable(endpoint=endpoint, name=name, region=region, server=server)
    try:
        client = local.client()
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": table.hash_key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": table.hash_key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
    except (BotoCoreError, ClientError, ValueError) as error:
        if server is not None:
            server.stop()
        raise EmulatorConfigError(f"cannot create the connections table at {endpoint}: {error}") from error
    except BaseException:
        if server is not None:
            server.stop()
        raise
    return local
