"""The custom domain component under mocks: off, on without DNS, on with a Route 53 alias record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from app.settings import StackSettings
from infra.domain import build_custom_domain
from tests.hardening.harness import ComponentRun, run_components
from tests.infra.mocks import REGIONAL_ZONE_ID

API_ID = "a1b2c3d4e5"
STAGE = "prod"
DOMAIN = "chat.example.com"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b9d3e5c-1a2b-4c3d-8e9f-001122334455"
ZONE = "Z0123456789ABCDEFGHIJ"
ON = StackSettings(stage_name=STAGE, custom_domain_name=DOMAIN, certificate_arn=CERTIFICATE)

DOMAIN_TYPE = "aws:apigatewayv2/domainName:DomainName"
MAPPING = "aws:apigatewayv2/apiMapping:ApiMapping"
RECORD = "aws:route53/record:Record"


def _build(settings: StackSettings) -> ComponentRun:
    def build() -> Any:
        domain = build_custom_domain("chat", settings=settings, api_id=API_ID, stage_name=STAGE)
        if domain is None:
            return None
        return {"wss_url": domain.wss_url, "target": domain.target_domain_name, "zone": domain.target_hosted_zone_id}

    return run_components(build)


def test_off_registers_nothing() -> None:
    run = _build(StackSettings(stage_name=STAGE))
    assert run.value is None and run.resources == (), f"no domain configured, yet {[str(r) for r in run.resources]}"


@pytest.fixture(scope="module")
def without_zone() -> ComponentRun:
    return _build(ON)


def test_domain_name_is_regional_tls12_with_the_certificate(without_zone: ComponentRun) -> None:
    domain = without_zone.one(DOMAIN_TYPE, "chat-domain")
    assert domain.inputs["domainName"] == DOMAIN, f"{domain} serves {domain.inputs['domainName']}"
    configuration = domain.inputs["domainNameConfiguration"]
    assert configuration["certificateArn"] == CERTIFICATE, f"{domain} certificate {configuration['certificateArn']}"
    assert configuration["endpointType"] == "REGIONAL", f"{domain} endpoint {configuration['endpointType']}"
    assert configuration["securityPolicy"] == "TLS_1_2", f"{domain} TLS policy {configuration['securityPolicy']}"


def test_mapping_points_the_domain_root_at_the_stage(without_zone: ComponentRun) -> None:
    mapping = without_zone.one(MAPPING, "chat-mapping")
    domain = without_zone.one(DOMAIN_TYPE, "chat-domain")
    assert mapping.inputs["apiId"] == API_ID, f"{mapping} maps API {mapping.inputs['apiId']}"
    assert mapping.inputs["stage"] == STAGE, f"{mapping} maps stage {mapping.inputs['stage']}"
    assert mapping.inputs["domainName"] == domain.id, f"{mapping} maps domain {mapping.inputs['domainName']}"
    assert domain.urn in mapping.dependencies, f"{mapping} may be created before {domain}"
    assert not mapping.inputs.get("apiMappingKey"), f"{mapping} has a key; the URL would need a path"


def test_no_record_without_a_hosted_zone(without_zone: ComponentRun) -> None:
    assert without_zone.of_type(RECORD) == [], "a DNS record was created without a hosted zone id"
    target, zone = without_zone.value["target"], without_zone.value["zone"]
    assert target.startswith("d-") and target.endswith(".amazonaws.com"), f"target domain name {target!r} not exposed"
    assert zone == REGIONAL_ZONE_ID, f"target hosted zone {zone!r} not exposed"


def test_wss_url_is_the_custom_domain(without_zone: ComponentRun) -> None:
    assert without_zone.value["wss_url"] == f"wss://{DOMAIN}", f"wss URL is {without_zone.value['wss_url']}"


def test_alias_record_when_a_hosted_zone_is_given() -> None:
    run = _build(dataclasses.replace(ON, hosted_zone_id=ZONE))
    record = run.one(RECORD, "chat-record")
    domain = run.one(DOMAIN_TYPE, "chat-domain")
    configuration = domain.outputs["domainNameConfiguration"]
    assert record.inputs["zoneId"] == ZONE, f"{record} is in zone {record.inputs['zoneId']}"
    assert record.inputs["name"] == DOMAIN and record.inputs["type"] == "A", f"{record} is {record.inputs}"
    assert record.inputs["aliases"] == [
        {
            "name": configuration["targetDomainName"],
            "zoneId": configuration["hostedZoneId"],
            "evaluateTargetHealth": False,
        }
    ], f"{record} aliases {record.inputs['aliases']}, not the domain's regional target"
    assert "records" not in record.inputs and "ttl" not in record.inputs, f"{record} mixes alias and plain records"


def test_every_resource_is_a_child_of_the_component() -> None:
    run = _build(dataclasses.replace(ON, hosted_zone_id=ZONE))
    component = run.one("chat:index:CustomDomain", "chat")
    for resource in run.resources:
        if resource is not component:
            assert resource.parent == component.urn, f"{resource} is not parented to {component}"
