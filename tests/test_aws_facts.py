"""Each AWS fact of `handlers.aws_facts` stated as a literal, with where it comes from, so a wrong constant fails here.

Everything else (handlers, program, emulator, clients) imports these constants; their tests check behaviour
against them, so one wrong value fails once, here, and clearly.
"""

from __future__ import annotations

from handlers import aws_facts

QUOTAS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html"


def test_frame_size_quota_is_32_kb() -> None:
    assert aws_facts.FRAME_LIMIT_BYTES == 32768, f"WebSocket frame size: 32 KB ({QUOTAS})"


def test_message_payload_quota_is_128_kb() -> None:
    assert aws_facts.MESSAGE_LIMIT_BYTES == 131072, f"message payload size: 128 KB ({QUOTAS})"


def test_callback_post_body_is_at_most_131072_bytes() -> None:
    assert aws_facts.CALLBACK_PAYLOAD_LIMIT_BYTES == 131072, (
        "botocore's apigatewaymanagementapi model: shape Data is a blob with max 131072"
    )


def test_oversized_input_closes_with_1009() -> None:
    assert aws_facts.CLOSE_MESSAGE_TOO_BIG == 1009, (
        f"a larger frame or message closes the connection with 1009 ({QUOTAS})"
    )


def test_the_service_closes_with_1001() -> None:
    assert aws_facts.CLOSE_GOING_AWAY == 1001, "observed: disconnectStatusCode 1001 when API Gateway ends a connection"


def test_idle_timeout_is_10_minutes() -> None:
    assert aws_facts.IDLE_TIMEOUT_SECONDS == 600, f"idle connection timeout: 10 minutes ({QUOTAS})"


def test_connection_duration_is_2_hours() -> None:
    assert aws_facts.MAX_CONNECTION_SECONDS == 7200, f"connection duration for WebSocket API: 2 hours ({QUOTAS})"


def test_integration_timeout_is_29_seconds() -> None:
    assert aws_facts.INTEGRATION_TIMEOUT_SECONDS == 29, f"integration timeout: 50 ms to 29 s ({QUOTAS})"


def test_connection_ids_look_like_api_gateways() -> None:
    pattern = aws_facts.CONNECTION_ID_PATTERN
    assert pattern.fullmatch("L0SM9cOFvHcCIhw=") and pattern.fullmatch("CEoGDHXXoAMFpMw="), "observed ids must match"
    for wrong in ("L0SM9cOFvHcCIhw", "L0SM9cOFvHcCIhw==", "L0SM9cOFvHcC-hw=", "L0SM9cOFvHcCIhwA="):
        assert not pattern.fullmatch(wrong), f"{wrong!r} is not shaped like an API Gateway id"


def test_the_source_is_the_quotas_table() -> None:
    assert aws_facts.QUOTAS_URL == QUOTAS, "the module cites AWS's WebSocket quotas table"
