"""The read-only AWS calls preflight makes, one method each, so a test can stand in for one moto lacks."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError


class AwsReader:
    """Read-only views of one account and region through the standard credential chain (and `AWS_ENDPOINT_URL`)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._session = boto3.session.Session(region_name=region)

    def _client(self, service: str, region: str | None = None) -> Any:
        return self._session.client(service, region_name=region or self.region)  # type: ignore[call-overload]

    def caller_identity(self) -> dict[str, Any]:
        """`sts:GetCallerIdentity`: the account and the principal the credentials belong to."""
        identity: dict[str, Any] = self._client("sts").get_caller_identity()
        return identity

    def cloudwatch_role_arn(self) -> str | None:
        """`apigateway:GET /account`: the region's API Gateway CloudWatch role, None when unset."""
        role = self._client("apigateway").get_account().get("cloudwatchRoleArn")
        return str(role) if role else None

    def role_exists(self, role_arn: str) -> bool:
        """`iam:GetRole`: whether the role an ARN names still exists."""
        try:
            self._client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return False
            raise
        return True

    def lambda_concurrency(self) -> tuple[int, int]:
        """`lambda:GetAccountSettings`: the region's concurrency quota and how much of it is unreserved."""
        limit = self._client("lambda").get_account_settings()["AccountLimit"]
        return int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"])

    def certificate(self, arn: str) -> dict[str, Any] | None:
        """`acm:DescribeCertificate` in the certificate's own region; None when it does not exist."""
        region = arn.split(":")[3]
        try:
            described: dict[str, Any] = self._client("acm", region).describe_certificate(CertificateArn=arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        return dict(described["Certificate"])

    def hosted_zone(self, zone_id: str) -> dict[str, Any] | None:
        """`route53:GetHostedZone`; None when there is no such zone."""
        try:
            zone: dict[str, Any] = self._client("route53").get_hosted_zone(Id=zone_id)["HostedZone"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchHostedZone":
                return None
            raise
        return zone

    def kms_key(self, arn: str) -> dict[str, Any] | None:
        """`kms:DescribeKey` in the key's own region; None when there is no such key."""
        try:
            described: dict[str, Any] = self._client("kms", arn.split(":")[3]).describe_key(KeyId=arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NotFoundException":
                return None
            raise
        return dict(described["KeyMetadata"])
