"""The checks, each a function of the stack and an `AwsReader` returning one `Result`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from app.settings import PROJECT
from preflight.aws import AwsReader
from preflight.stack import Stack

MIN_UNRESERVED = 100
"""Lambda refuses a reservation that leaves less than this unreserved in the region."""


@dataclass(frozen=True)
class Result:
    """One check's verdict: `ok`, `note` (fine, but worth knowing) or `blocker` (with how to fix it)."""

    check: str
    status: str
    message: str
    fix: str = ""

    def line(self) -> str:
        """The one line printed for this check."""
        text = f"{self.status.upper():8} {self.check:14} {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


def ok(check: str, message: str) -> Result:
    return Result(check, "ok", message)


def note(check: str, message: str) -> Result:
    return Result(check, "note", message)


def blocker(check: str, message: str, fix: str) -> Result:
    return Result(check, "blocker", message, fix)


def credentials(stack: Stack, aws: AwsReader) -> Result:
    identity = aws.caller_identity()
    return ok("credentials", f"account {identity['Account']} as {identity['Arn']}, region {stack.region}")


def cloudwatch_role(stack: Stack, aws: AwsReader) -> Result:
    """Every stage that logs (this one always writes access logs) needs the region's API Gateway CloudWatch role."""
    role = aws.cloudwatch_role_arn()
    external = stack.settings.api_gateway_logging_role == "external"
    set_role = (
        f"aws apigateway update-account --region {stack.region} "
        "--patch-operations op=replace,path=/cloudwatchRoleArn,value=<role ARN> (docs/deploy.md)"
    )
    if role is None and external:
        return blocker(
            "logging role",
            f"API Gateway has no account CloudWatch role in {stack.region} and apiGatewayLoggingRole is external",
            f"ask whoever manages it to run {set_role}, or `pulumi config set apiGatewayLoggingRole auto`",
        )
    if role is None:
        return ok("logging role", f"none in {stack.region}: the first up creates one and keeps it on destroy")
    if not aws.role_exists(role):
        return blocker(
            "logging role",
            f"the account setting names {role}, which no longer exists: CreateStage would fail",
            f"recreate that role or point the setting at another: {set_role}",
        )
    return ok("logging role", f"present: {role}")


def lambda_concurrency(stack: Stack, aws: AwsReader) -> Result:
    """Reserved concurrency must leave Lambda's minimum unreserved (10 on accounts whose whole quota is that small)."""
    limit, unreserved = aws.lambda_concurrency()
    reserved = stack.settings.reserved_concurrency
    if reserved is None:
        return ok("concurrency", f"nothing reserved; region quota {limit}, {unreserved} unreserved")
    needed = reserved * stack.function_count
    minimum = MIN_UNRESERVED if limit > MIN_UNRESERVED else limit
    if needed > limit - minimum:
        return blocker(
            "concurrency",
            f"reservedConcurrency {reserved} x {stack.function_count} functions = {needed}, but the region's quota "
            f"of {limit} must keep {minimum} unreserved",
            "request a higher 'Concurrent executions' quota in Service Quotas, or lower or unset reservedConcurrency",
        )
    if needed > unreserved - minimum:
        # Includes this stack's own reservations after an earlier up, hence a note, not a blocker.
        return note(
            "concurrency",
            f"{needed} to reserve, {unreserved} unreserved now: enough only if this stack already holds the difference",
        )
    return ok("concurrency", f"{needed} to reserve of {limit}, leaving at least {minimum} unreserved")


def certificate(stack: Stack, aws: AwsReader) -> Result:
    """A regional custom domain needs an ISSUED ACM certificate in the API's region that covers the domain."""
    domain, arn = stack.settings.custom_domain_name, stack.settings.certificate_arn
    if domain is None or arn is None:
        return ok("certificate", "no custom domain")
    region = arn.split(":")[3]
    if region != stack.region:
        return blocker(
            "certificate",
            f"{arn} is in {region}, the API in {stack.region}: WebSocket custom domains are regional",
            f"request or import a certificate for {domain} in {stack.region} and set certificateArn to it",
        )
    described = aws.certificate(arn)
    if described is None:
        return blocker("certificate", f"{arn} does not exist in {region}", "set certificateArn to an existing one")
    status = described.get("Status")
    if status != "ISSUED":
        return blocker(
            "certificate",
            f"{arn} is {status}, not ISSUED",
            "create the DNS validation record ACM lists for it (aws acm describe-certificate) and wait for ISSUED",
        )
    names = {described.get("DomainName", ""), *described.get("SubjectAlternativeNames", [])}
    if not any(covers(name, domain) for name in names):
        return blocker(
            "certificate",
            f"{arn} covers {', '.join(sorted(names))}, not {domain}",
            f"use a certificate for {domain} (or *.{domain.split('.', 1)[-1]})",
        )
    return ok("certificate", f"ISSUED in {region}, covers {domain}")


def covers(name: str, domain: str) -> bool:
    """Whether a certificate name covers the domain: exactly, or as a wildcard one label deep."""
    if name.startswith("*."):
        return "." in domain and domain.split(".", 1)[1] == name[2:]
    return name == domain


def hosted_zone(stack: Stack, aws: AwsReader) -> Result:
    """The alias record goes into this zone: it must exist, be public and be the domain's zone (or a parent)."""
    domain, zone_id = stack.settings.custom_domain_name, stack.settings.hosted_zone_id
    if domain is None or zone_id is None:
        return ok("hosted zone", "none configured (DNS is left to you)" if domain else "no custom domain")
    zone = aws.hosted_zone(zone_id)
    if zone is None:
        return blocker("hosted zone", f"{zone_id} does not exist", "set hostedZoneId to the domain's public zone")
    zone_name = str(zone["Name"]).rstrip(".")
    if domain != zone_name and not domain.endswith(f".{zone_name}"):
        return blocker(
            "hosted zone",
            f"{zone_id} is {zone_name}, which does not hold {domain}",
            f"set hostedZoneId to the public zone of {domain} (aws route53 list-hosted-zones-by-name)",
        )
    if zone.get("Config", {}).get("PrivateZone"):
        return blocker("hosted zone", f"{zone_id} is private", "use the public zone of the domain")
    return ok("hosted zone", f"{zone_id} ({zone_name}) holds {domain}")


def table_key(stack: Stack, aws: AwsReader) -> Result:
    """A customer key for the tables must exist, be enabled and be in the stack's region (DynamoDB's rule)."""
    arn = stack.settings.table_kms_key_arn
    if arn is None:
        return ok("table key", "AWS-managed key")
    region = arn.split(":")[3]
    if region != stack.region:
        return blocker(
            "table key", f"{arn} is in {region}, the table in {stack.region}", f"use a key in {stack.region}"
        )
    key = aws.kms_key(arn)
    if key is None:
        return blocker("table key", f"{arn} does not exist", "set tableKmsKeyArn to an existing key's ARN")
    if key.get("KeyState") != "Enabled":
        return blocker(
            "table key", f"{arn} is {key.get('KeyState')}", "enable the key (aws kms enable-key) or use another"
        )
    return ok("table key", f"{arn} is enabled in {region}")


def secrets(stack: Stack, aws: AwsReader) -> Result:
    """The secrets the stack's auth mode needs are set (encrypted) in its config; no AWS call."""
    missing = [key for key in stack.required_secrets() if key not in stack.secrets_set]
    if missing:
        return blocker(
            "secrets",
            f"auth is {stack.settings.auth} but {', '.join(f'{PROJECT}:{key}' for key in missing)} is not set",
            " and ".join(f"pulumi config set --secret {key} <value> --stack {stack.name}" for key in missing)
            + " (docs/hardening.md)",
        )
    if not stack.required_secrets():
        why = "auth is none" if stack.settings.auth == "none" else f"tokens of {stack.settings.jwt_issuer}"
        return ok("secrets", f"{why}: no secret needed")
    return ok("secrets", f"{', '.join(stack.required_secrets())} set for auth {stack.settings.auth}")


CHECKS: tuple[Callable[[Stack, AwsReader], Result], ...] = (
    credentials,
    cloudwatch_role,
    lambda_concurrency,
    certificate,
    hosted_zone,
    table_key,
    secrets,
)


def run_checks(stack: Stack, aws: AwsReader) -> list[Result]:
    """Every check in order; with no usable credentials, the AWS checks are not attempted."""
    results: list[Result] = []
    for check in CHECKS:
        try:
            results.append(check(stack, aws))
        except (BotoCoreError, ClientError) as error:
            name = check.__name__.replace("_", " ")
            results.append(
                blocker(
                    name, f"could not read: {error}", "check the credentials and the read permissions in docs/deploy.md"
                )
            )
            if check is credentials:
                results.append(secrets(stack, aws))
                break
    return results
