"""`make preflight` against moto's server, reached through `AWS_ENDPOINT_URL` as a user's shell would reach AWS.

moto answers STS, API Gateway's `get_account`/`update_account`, IAM, ACM and Route 53; it does not implement
Lambda's `GetAccountSettings`, so `QuotaReader` stands in for that one call with the quota a test chooses. moto's
hosted zone ids lack Route 53's leading `Z`, which the settings require: the tests configure `Z` + moto's id and
`QuotaReader` drops the `Z` before asking moto.
"""

from __future__ import annotations

import datetime
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.server import ThreadedMotoServer

from app import definition
from preflight.__main__ import BLOCKED, READY, USAGE, main
from preflight.aws import AwsReader
from tests.aws_sessions import share_models

REGION = "us-east-1"
DOMAIN = "chat.example.com"


class QuotaReader(AwsReader):
    """moto has no `lambda:GetAccountSettings`: answer it with the quota of the test."""

    quota: tuple[int, int] = (1000, 1000)

    def lambda_concurrency(self) -> tuple[int, int]:
        return self.quota

    def hosted_zone(self, zone_id: str) -> dict[str, Any] | None:
        return super().hosted_zone(zone_id.removeprefix("Z"))


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh fake account behind `AWS_ENDPOINT_URL`, with fake credentials and no profile."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    QuotaReader.quota = (1000, 1000)
    share_models(monkeypatch)
    yield endpoint


def write_stack(directory: Path, name: str = "dev", **config: Any) -> Path:
    values = {"aws:region": REGION, **{f"websocket-chat:{key}": value for key, value in config.items()}}
    (directory / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": values}))
    return directory


def preflight(directory: Path, capsys: pytest.CaptureFixture[str], stack: str = "dev") -> tuple[int, dict[str, str]]:
    """Run preflight; the exit status and each check's line, by check name."""
    status = main(["--stack", stack], reader=QuotaReader, repository=directory)
    lines = capsys.readouterr().out.splitlines()
    checks = {line[9:23].strip(): line for line in lines[:-1]}
    return status, checks


def imported_certificate(domain: str, region: str = REGION) -> str:
    """An ISSUED certificate for `domain` (imported certificates are ISSUED at once in moto, as in ACM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    arn: str = boto3.client("acm", region_name=region).import_certificate(
        Certificate=certificate.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )["CertificateArn"]
    return arn


def account_role() -> str:
    iam = boto3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn: str = iam.create_role(RoleName="company-apigateway-logs", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    boto3.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )
    return arn


def test_a_fresh_account_is_ready_and_says_the_role_will_be_created(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks = preflight(write_stack(tmp_path), capsys)
    assert status == READY, f"a fresh account is not ready: {checks}"
    assert "account 123456789012" in checks["credentials"], checks["credentials"]
    assert "the first up creates one" in checks["logging role"], checks["logging role"]


def test_a_fresh_account_with_the_role_managed_elsewhere_is_blocked(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks = preflight(write_stack(tmp_path, apiGatewayLoggingRole="external"), capsys)
    assert status == BLOCKED, checks
    assert checks["logging role"].startswith("BLOCKER") and "update-account" in checks["logging role"], checks


def test_an_account_with_a_role_reports_it(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    role = account_role()
    status, checks = preflight(write_stack(tmp_path, apiGatewayLoggingRole="external"), capsys)
    assert status == READY, checks
    assert f"present: {role}" in checks["logging role"], checks["logging role"]


def test_a_setting_that_names_a_deleted_role_is_a_blocker(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = account_role()
    boto3.client("iam").delete_role(RoleName=role.rsplit("/", 1)[-1])
    status, checks = preflight(write_stack(tmp_path), capsys)
    assert status == BLOCKED and "no longer exists" in checks["logging role"], checks


def test_a_pending_certificate_is_a_blocker(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arn = boto3.client("acm").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    status, checks = preflight(write_stack(tmp_path, customDomainName=DOMAIN, certificateArn=arn), capsys)
    assert status == BLOCKED, checks
    assert "PENDING_VALIDATION" in checks["certificate"] and "validation record" in checks["certificate"], checks


def test_an_issued_certificate_covering_the_domain_passes(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = imported_certificate(DOMAIN)
    status, checks = preflight(write_stack(tmp_path, customDomainName=DOMAIN, certificateArn=arn), capsys)
    assert status == READY, checks
    assert f"covers {DOMAIN}" in checks["certificate"], checks["certificate"]


def test_a_certificate_for_another_name_is_a_blocker(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = imported_certificate("other.example.org")
    status, checks = preflight(write_stack(tmp_path, customDomainName=DOMAIN, certificateArn=arn), capsys)
    assert status == BLOCKED and f"not {DOMAIN}" in checks["certificate"], checks


def test_a_certificate_in_another_region_is_a_blocker(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = imported_certificate(DOMAIN, region="eu-west-1")
    status, checks = preflight(write_stack(tmp_path, customDomainName=DOMAIN, certificateArn=arn), capsys)
    assert status == BLOCKED, checks
    assert "eu-west-1" in checks["certificate"] and "regional" in checks["certificate"], checks


def test_a_zone_that_does_not_hold_the_domain_is_a_blocker(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = boto3.client("route53").create_hosted_zone(Name="example.org", CallerReference="other")
    zone_id = "Z" + zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    stack = write_stack(
        tmp_path, customDomainName=DOMAIN, certificateArn=imported_certificate(DOMAIN), hostedZoneId=zone_id
    )
    status, checks = preflight(stack, capsys)
    assert status == BLOCKED, checks
    assert "example.org" in checks["hosted zone"] and "does not hold" in checks["hosted zone"], checks


def test_the_domain_zone_passes(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zone = boto3.client("route53").create_hosted_zone(Name="example.com", CallerReference="ours")
    zone_id = "Z" + zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    stack = write_stack(
        tmp_path, customDomainName=DOMAIN, certificateArn=imported_certificate(DOMAIN), hostedZoneId=zone_id
    )
    status, checks = preflight(stack, capsys)
    assert status == READY and "holds chat.example.com" in checks["hosted zone"], checks


FUNCTIONS = len(definition.FUNCTIONS)
"""The functions a stack without auth reserves concurrency for, so the cases follow the route table."""


@pytest.mark.parametrize(
    ("quota", "reserved", "expected"),
    [
        ((10, 10), 1, BLOCKED),
        ((1000, 1000), 900 // FUNCTIONS + 1, BLOCKED),
        ((1000, 1000), 900 // FUNCTIONS, READY),
    ],
    ids=["new-account-quota-10", "leaves-less-than-100", "fits"],
)
def test_reserved_concurrency_is_checked_against_the_quota(  # noqa: PLR0917  (parameters and fixtures)
    quota: tuple[int, int],
    reserved: int,
    expected: int,
    aws: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    QuotaReader.quota = quota
    status, checks = preflight(write_stack(tmp_path, reservedConcurrency=reserved), capsys)
    assert status == expected, checks["concurrency"]


def test_the_table_key_must_exist_and_be_enabled(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]
    arn = key["Arn"]
    status, checks = preflight(write_stack(tmp_path, tableKmsKeyArn=arn), capsys)
    assert status == READY and "enabled" in checks["table key"], checks["table key"]
    kms.disable_key(KeyId=key["KeyId"])
    status, checks = preflight(write_stack(tmp_path, tableKmsKeyArn=arn), capsys)
    assert status == BLOCKED and "Disabled" in checks["table key"], checks["table key"]
    missing = arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    status, checks = preflight(write_stack(tmp_path, tableKmsKeyArn=missing), capsys)
    assert status == BLOCKED and "does not exist" in checks["table key"], checks["table key"]


def test_auth_without_its_secret_is_a_blocker(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, checks = preflight(write_stack(tmp_path, auth="jwt"), capsys)
    assert status == BLOCKED and "pulumi config set --secret jwtSecret" in checks["secrets"], checks
    encrypted = {"secure": "v1:abc"}
    status, checks = preflight(write_stack(tmp_path, auth="jwt", jwtSecret=encrypted), capsys)
    assert status == READY, checks["secrets"]
    issuer = {"jwtIssuer": "https://id.example.com/", "jwtAudience": "chat"}
    status, checks = preflight(write_stack(tmp_path, auth="jwt", **issuer), capsys)
    assert status == READY, f"an issuer needs no secret: {checks['secrets']}"


def test_no_credentials_is_a_blocker_not_a_crash(
    aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    status, checks = preflight(write_stack(tmp_path), capsys)
    assert status == BLOCKED and checks["credentials"].startswith("BLOCKER"), checks
    assert "logging role" not in checks, "AWS checks ran without credentials"


def test_a_bad_config_or_usage_exits_2(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "nowhere"], reader=QuotaReader, repository=tmp_path) == USAGE, "missing stack file"
    write_stack(tmp_path, tableKmsKeyArn="arn:aws:kms:us-east-1:123456789012:alias/chat")
    assert main(["--stack", "dev"], reader=QuotaReader, repository=tmp_path) == USAGE, "alias ARN accepted"
    assert main([], reader=QuotaReader, repository=tmp_path) == USAGE, "no --stack accepted"
    assert "tableKmsKeyArn" in capsys.readouterr().err, "the config error does not name the key"
