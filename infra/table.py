"""A DynamoDB table declared in `app.definition.TABLES` (the connections table, and any other)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from app.definition import Table


@dataclass
class ConnectionsTableArgs:
    """The table's shape (from `app.definition`) and the stack's choices for it."""

    table: Table
    billing_mode: str
    read_capacity: int | None
    write_capacity: int | None
    point_in_time_recovery: bool
    kms_key_arn: str | None


class ConnectionsTable(pulumi.ComponentResource):
    """One table of `app.definition`: its hash key, TTL attribute and the stack's billing, backup and encryption."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: ConnectionsTableArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ConnectionsTable", name, None, opts)

        shape = args.table
        # $disconnect is best effort, so rows of vanished clients would pile up; TTL removes them for free.
        self.table = aws.dynamodb.Table(
            f"{name}-table",
            hash_key=shape.hash_key,
            range_key=shape.range_key,
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=attribute, type=kind)
                for attribute, kind in shape.attribute_types().items()
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=index.name,
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=index.hash_key, key_type="HASH"
                        )
                    ],
                    projection_type="INCLUDE" if index.projected else "KEYS_ONLY",
                    non_key_attributes=list(index.projected) or None,
                    read_capacity=args.read_capacity,
                    write_capacity=args.write_capacity,
                )
                for index in shape.indexes
            ]
            or None,
            billing_mode=args.billing_mode,
            read_capacity=args.read_capacity,
            write_capacity=args.write_capacity,
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=shape.ttl_attribute, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=args.point_in_time_recovery),
            # Enabled means a KMS key: the customer's when given, else the AWS-managed `aws/dynamodb` key.
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.name = self.table.name
        self.arn = self.table.arn
        self.register_outputs({"name": self.name, "arn": self.arn})

    def index_arn(self, index: str) -> pulumi.Output[str]:
        """The ARN of one of its global secondary indexes, what a Query on that index is granted on."""
        return pulumi.Output.concat(self.arn, "/index/", index)
