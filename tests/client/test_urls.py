"""Checking chat URLs and adding the display name and first room to them."""

from __future__ import annotations

import pytest

from client.urls import BadUrlError, chat_url, redacted


def test_name_and_room_become_query_parameters() -> None:
    url = chat_url("wss://abc.execute-api.eu-west-1.amazonaws.com/dev", name="Zoë & co", room="ops")
    assert url == "wss://abc.execute-api.eu-west-1.amazonaws.com/dev?name=Zo%C3%AB+%26+co&room=ops", url


def test_existing_query_is_kept_and_name_replaced() -> None:
    url = chat_url("ws://127.0.0.1:3001/dev?name=old&debug=1 ", name="new")
    assert url == "ws://127.0.0.1:3001/dev?debug=1&name=new", url


def test_url_without_name_or_room_is_unchanged() -> None:
    assert chat_url("ws://127.0.0.1:3001/dev") == "ws://127.0.0.1:3001/dev", "plain URL was altered"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "the URL is empty"),
        ("   ", "the URL is empty"),
        ("https://example.com/dev", "must look like ws://HOST/STAGE"),
        ("127.0.0.1:3001/dev", "must look like ws://HOST/STAGE"),
        ("ws:///dev", "must look like ws://HOST/STAGE"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, complaint: str) -> None:
    with pytest.raises(BadUrlError, match=complaint):
        chat_url(url)


def test_token_is_hidden_in_messages() -> None:
    shown = redacted("wss://host/dev?name=alice&token=secret")
    assert "secret" not in shown and shown == "wss://host/dev?name=alice&token=***", shown
