"""Your own domain for the WebSocket URL: an API Gateway domain name, its mapping to the stage, and DNS.

Optional (`customDomainName` with `certificateArn`; `hostedZoneId` adds the alias record). Clients connect to
`wss://{domain}`; the handlers keep posting to the execute-api callback URL, because the `@connections` API through
a custom domain is a well-known source of 403s.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from app.settings import StackSettings

ENDPOINT_TYPE = "REGIONAL"
"""WebSocket APIs support regional custom domains only (no edge-optimized ones); the certificate must be in the
stack's region."""

SECURITY_POLICY = "TLS_1_2"
"""The strictest policy API Gateway offers for WebSocket domains; TLS 1.0 and 1.1 are refused."""


@dataclass
class CustomDomainArgs:
    """The domain, its certificate, optionally the Route 53 zone to publish it in, and the stage it serves."""

    domain_name: str
    certificate_arn: str
    """An ACM certificate in the stack's region covering `domain_name`."""
    hosted_zone_id: str | None
    """A Route 53 public hosted zone for the domain; None leaves DNS to you (see `target_domain_name`)."""
    api_id: pulumi.Input[str]
    stage_name: pulumi.Input[str]
    """The stage's name as an output of the stage resource, so the mapping waits until the stage exists."""


class CustomDomain(pulumi.ComponentResource):
    """`wss://{domain}` serving one stage of the API, with an alias record when a hosted zone is given."""

    wss_url: pulumi.Output[str]
    target_domain_name: pulumi.Output[str]
    """The regional API Gateway host the domain must resolve to (an alias, or a CNAME where DNS is elsewhere)."""
    target_hosted_zone_id: pulumi.Output[str]

    def __init__(self, name: str, args: CustomDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:CustomDomain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.domain = aws.apigatewayv2.DomainName(
            f"{name}-domain",
            domain_name=args.domain_name,
            domain_name_configuration=aws.apigatewayv2.DomainNameDomainNameConfigurationArgs(
                certificate_arn=args.certificate_arn,
                endpoint_type=ENDPOINT_TYPE,
                security_policy=SECURITY_POLICY,
            ),
            opts=child,
        )
        configuration = self.domain.domain_name_configuration
        self.target_domain_name = configuration.apply(lambda config: config.target_domain_name or "")
        self.target_hosted_zone_id = configuration.apply(lambda config: config.hosted_zone_id or "")

        # No mapping key: the domain's root is the stage, so the URL carries no stage path.
        self.mapping = aws.apigatewayv2.ApiMapping(
            f"{name}-mapping",
            api_id=args.api_id,
            domain_name=self.domain.id,
            stage=args.stage_name,
            opts=child,
        )

        self.record: aws.route53.Record | None = None
        if args.hosted_zone_id is not None:
            # An alias A record: free to query, follows API Gateway's addresses, and valid at a zone apex.
            self.record = aws.route53.Record(
                f"{name}-record",
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type="A",
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=self.target_domain_name,
                        zone_id=self.target_hosted_zone_id,
                        evaluate_target_health=False,
                    )
                ],
                opts=child,
            )

        # Through the mapping's id as well, so the URL is published only once the domain serves the stage.
        self.wss_url = pulumi.Output.all(self.domain.domain_name, self.mapping.id).apply(
            lambda values: f"wss://{values[0]}"
        )
        self.register_outputs(
            {
                "wss_url": self.wss_url,
                "target_domain_name": self.target_domain_name,
                "target_hosted_zone_id": self.target_hosted_zone_id,
            }
        )


def build_custom_domain(
    name: str,
    *,
    settings: StackSettings,
    api_id: pulumi.Input[str],
    stage_name: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> CustomDomain | None:
    """The custom domain when `customDomainName` is set, None otherwise (settings already require the certificate)."""
    if settings.custom_domain_name is None:
        return None
    if settings.certificate_arn is None:
        raise ValueError("customDomainName is set without certificateArn; app.settings should have refused that")
    return CustomDomain(
        name,
        CustomDomainArgs(
            domain_name=settings.custom_domain_name,
            certificate_arn=settings.certificate_arn,
            hosted_zone_id=settings.hosted_zone_id,
            api_id=api_id,
            stage_name=stage_name,
        ),
        opts,
    )
