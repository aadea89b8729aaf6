"""`handlers.clients`: the lean callback client signs as boto3 does, with the session's credentials and region."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handlers import broadcast, clients
from tests.handlers.callback_server import CallbackServer


def signed_headers(authorization: str) -> list[str]:
    """The `SignedHeaders=` list of a SigV4 `Authorization` header."""
    found = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert found, f"not a SigV4 Authorization header: {authorization!r}"
    return found.group(1).split(";")


def test_callback_posts_are_signed_like_boto3s(aws_credentials: None, callback_server: CallbackServer) -> None:
    connection_id = "L0SM9cOF/+vHcCIhw="  # '/', '+' and '=' must be percent-encoded in the path, as boto3 does
    stock = boto3.client(
        "apigatewaymanagementapi", endpoint_url=callback_server.url, config=Config(retries={"total_max_attempts": 1})
    )
    stock.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    outcome = broadcast.post(clients.callback_api(callback_server.url), connection_id, b"{}", broadcast.Retry())

    assert outcome == broadcast.DELIVERED, f"a post through the lean client must be delivered, got {outcome}"
    theirs, ours = callback_server.posts
    assert ours.path == theirs.path, f"the request path must be boto3's: {ours.path!r} against {theirs.path!r}"
    assert ours.connection_id == connection_id, f"the server must read back the same id: {ours.connection_id!r}"
    assert re.match(
        r"AWS4-HMAC-SHA256 Credential=testing/\d{8}/us-east-1/execute-api/aws4_request,", ours.authorization
    ), f"signed with the session's key for execute-api in the session's region: {ours.authorization!r}"
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed_headers(ours.authorization)), (
        f"host, date and session token must be signed: {ours.authorization!r}"
    )
    telemetry = {"amz-sdk-invocation-id", "amz-sdk-request"} & ours.header_names
    assert not telemetry, f"the callback client sends no SDK telemetry: {telemetry}"


def test_the_callback_client_is_made_once_per_endpoint(aws_credentials: None, callback_server: CallbackServer) -> None:
    assert clients.callback_api(callback_server.url) is clients.callback_api(callback_server.url)


def test_an_endpoint_that_is_not_http_is_refused(aws_credentials: None) -> None:
    with pytest.raises(ValueError, match="http"):
        clients.callback_api("wss://example.com/dev")


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (an IP address or a host name) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alternative: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alternative = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([alternative]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_file, key_file


@pytest.mark.parametrize(("certified_name", "outcome"), [("127.0.0.1", "delivered"), ("example.com", "TLS:")])
def test_https_posts_check_the_certificate_and_the_host_name(
    aws_credentials: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certified_name: str, outcome: str
) -> None:
    certificate, key = self_signed(tmp_path, certified_name)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate))  # trusted, as botocore trusts AWS_CA_BUNDLE
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    with CallbackServer(tls=tls) as server:
        client = clients.callback_api(server.url)
        result = broadcast.post(client, "target=", b"{}", broadcast.Retry(attempts=1))
    assert result.startswith(outcome), f"a certificate for {certified_name} must give {outcome!r}, got {result!r}"
    assert (server.deliveries["target="] == 1) == (outcome == "delivered"), "nothing is sent over an unverified TLS"
