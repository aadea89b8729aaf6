"""The chat page (web/) in a real headless Chromium against the emulator, which serves it at GET /."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, WebSocketRoute, expect
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

from emulator.testing import RunningEmulator, running_emulator
from handlers.aws_facts import FRAME_LIMIT_BYTES

pytestmark = pytest.mark.browser

RECONNECT_TIMEOUT_MS = 10_000
"""Generous for one handshake and join, once the page's retry timer has fired."""


def longest_retry_ms() -> int:
    """The page's cap on its backoff (web/chat.js): a retry is never further away than this."""
    found = re.search(r"LONGEST_RETRY_MS = (\d+);", (Path(__file__).parents[2] / "web" / "chat.js").read_text())
    assert found, "web/chat.js no longer caps its backoff with LONGEST_RETRY_MS"
    return int(found[1])


class ChatPage:
    """One person's browser tab with the chat page, connected under a display name."""

    def __init__(
        self,
        browser: Browser,
        address: str,
        name: str,
        chat_url: str | None = None,
        token: str | None = None,
        *,
        clock: bool = False,
    ) -> None:
        self.context = browser.new_context(viewport={"width": 900, "height": 640}, locale="en-GB")
        if clock:  # the page's timers run on Playwright's clock, which a test may move forward
            self.context.clock.install()
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(address)
        self.name = name
        if name:
            self.page.fill("#name", name)
        if chat_url:
            self.page.fill("#url", chat_url)
        if token:
            self.page.fill("#token", token)
        self.page.click("#connect")
        self.expect_state("connected")

    def expect_state(self, state: str, timeout: float = 5_000) -> None:
        expect(self.page.locator("#status"), f"{self.name or 'anonymous'}'s page is not {state}").to_have_attribute(
            "data-state", state, timeout=timeout
        )

    def send(self, text: str) -> None:
        """Type the text and press Enter, as a person would (Shift+Enter for line breaks)."""
        box = self.page.locator("#message")
        for index, line in enumerate(text.split("\n")):
            if index:
                box.press("Shift+Enter")
            box.type(line) if len(line) < 200 else box.fill(box.input_value() + line)
        box.press("Enter")

    def message(self, text: str) -> Locator:
        """The locator of the chat message whose text is exactly `text`."""
        return self.page.locator(".message").filter(
            has=self.page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$"))
        )

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"JavaScript errors on {self.name}'s page: {self.errors}"


@pytest.fixture
def pages(browser: Browser, emulator: RunningEmulator) -> Iterator[list[ChatPage]]:
    """Pages opened by a test, closed (and checked for script errors) after it."""
    opened: list[ChatPage] = []
    yield opened
    for page in opened:
        page.close()


def test_url_is_prefilled_from_the_page_address(browser: Browser, emulator: RunningEmulator) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(emulator.http_url)
        expect(page.locator("#url"), "URL field does not point at the emulator's stage").to_have_value(emulator.ws_url)
        page.goto(emulator.http_url + "?stage=prod")
        expect(page.locator("#url"), "?stage= is not used").to_have_value(re.sub(r"/[^/]+$", "/prod", emulator.ws_url))
    finally:
        context.close()


def test_two_pages_chat_with_each_other(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage], artifacts: Path
) -> None:
    alice = ChatPage(browser, emulator.http_url, "Alice")
    pages.append(alice)
    bob = ChatPage(browser, emulator.http_url, "Bob")
    pages.append(bob)

    alice.send("Hi Bob! Is the dev stack up?")
    for page, sender, side in ((alice, "Alice (you)", "mine"), (bob, "Alice", "theirs")):
        line = page.message("Hi Bob! Is the dev stack up?")
        expect(line, f"Alice's message missing on {page.name}'s page").to_have_count(1)
        expect(line.locator(".sender"), f"wrong sender on {page.name}'s page").to_have_text(sender)
        expect(line, f"Alice's message not shown as {side} on {page.name}'s page").to_have_class(
            re.compile(rf"\b{side}\b")
        )
        expect(line.locator("time"), f"no local time on {page.name}'s page").to_have_text(re.compile(r"^\d\d:\d\d$"))

    reply = "Yes: the smoke test passed.\nDeploying to prod next."
    bob.send(reply)
    expect(alice.message(reply), "Bob's two-line reply did not reach Alice intact").to_have_count(1)
    alice.send("Great, I'll keep an eye on the alarms.")
    expect(
        bob.message("Great, I'll keep an eye on the alarms."), "Alice's second message missing for Bob"
    ).to_have_count(1)
    bob.send("Done. Café at five to celebrate?")
    expect(
        alice.message("Done. Café at five to celebrate?"), "Bob's non-ASCII message missing for Alice"
    ).to_have_count(1)

    alice.page.screenshot(path=str(artifacts / "chat-alice.png"))
    bob.page.screenshot(path=str(artifacts / "chat-bob.png"))


def test_oversized_message_shows_the_servers_error(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage], artifacts: Path, max_message_bytes: int
) -> None:
    oversized = "x" * (max_message_bytes + 1)
    with connect(emulator.ws_url) as probe:  # what the server says about this message, to compare with the page
        probe.send(json.dumps({"action": "sendmessage", "message": oversized}))
        refusal = json.loads(probe.recv(timeout=10))
    assert refusal.get("type") == "error", f"the emulator did not refuse an oversized message: {refusal}"

    carol = ChatPage(browser, emulator.http_url, "Carol")
    pages.append(carol)
    carol.send(oversized)
    error = carol.page.locator(".notice.error")
    expect(error, "the server's error frame is not shown").to_have_count(1)
    expect(error.locator(".notice-detail"), "the error shown is not the server's").to_contain_text(refusal["error"])
    expect(carol.page.locator(".message.mine"), "the refused message was shown as sent").to_have_count(0)
    expect(carol.page.locator("#message"), "the refused text was lost").to_have_value(oversized)
    carol.page.screenshot(path=str(artifacts / "chat-error.png"))


def test_message_too_big_for_one_frame_is_kept_and_not_sent(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage]
) -> None:
    oversized = "z" * (FRAME_LIMIT_BYTES + 1)
    grace = ChatPage(browser, emulator.http_url, "Grace")
    pages.append(grace)
    grace.send(oversized)
    expect(grace.page.locator(".notice.error .notice-title"), "no local refusal shown").to_have_text("Not sent")
    expect(grace.page.locator("#message"), "the oversized text was lost").to_have_value(oversized)
    grace.page.fill("#message", "shorter now")
    grace.page.press("#message", "Enter")
    expect(grace.message("shorter now"), "the connection did not survive the oversized message").to_have_count(1)
    grace.expect_state("connected")


def test_html_in_messages_and_names_is_shown_as_text(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage]
) -> None:
    payload = '<img src=x onerror="window.injected=1"><script>window.injected=2</script><b>bold?</b>'
    mallory = ChatPage(browser, emulator.http_url, "<i>mallory</i>")
    pages.append(mallory)
    dave = ChatPage(browser, emulator.http_url, "Dave")
    pages.append(dave)
    mallory.send(payload)
    line = dave.message(payload)
    expect(line, "the HTML payload is not shown verbatim as text").to_have_count(1)
    expect(line.locator(".sender"), "the HTML name is not shown verbatim").to_have_text("<i>mallory</i>")
    injected = dave.page.locator(".messages img, .messages script, .messages b, .messages i")
    expect(injected, "message HTML became elements").to_have_count(0)
    assert dave.page.evaluate("window.injected") is None, "the payload's script ran"


def test_page_reconnects_when_the_emulator_restarts(browser: Browser, pages: list[ChatPage], artifacts: Path) -> None:
    with running_emulator() as first:
        port = first.port
        erin = ChatPage(browser, first.http_url, "Erin", clock=True)
        pages.append(erin)
        first.stop()
        erin.expect_state("disconnected")
        expect(erin.page.locator("#status"), "the status does not say so").to_contain_text("Disconnected")
        erin.page.screenshot(path=str(artifacts / "chat-disconnected.png"))
    with running_emulator(port=port):
        # Whatever the backoff's delay came to, the page's own retry timer fires now instead of seconds later.
        erin.page.clock.fast_forward(longest_retry_ms())
        erin.expect_state("connected", timeout=RECONNECT_TIMEOUT_MS)
        erin.send("back online")
        expect(erin.message("back online"), "no echo after reconnecting").to_have_count(1)
        erin.page.screenshot(path=str(artifacts / "chat-reconnected.png"))


def test_api_gateways_failure_frame_is_shown_distinctly(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage]
) -> None:
    # The emulator sends this frame only when a handler crashes, which ours do not on purpose; a stand-in server
    # answers every message with it instead, while the page itself still comes from the emulator.
    failure = {"message": "Internal server error", "connectionId": "L0SM9cOFvHcCIhw=", "requestId": "req-crash-1"}

    def fail_everything(connection: ServerConnection) -> None:
        for _ in connection:
            connection.send(json.dumps(failure))

    with serve(fail_everything, "127.0.0.1", 0) as stand_in:
        threading.Thread(target=stand_in.serve_forever, daemon=True).start()
        stand_in_url = f"ws://127.0.0.1:{stand_in.socket.getsockname()[1]}/dev"
        frank = ChatPage(browser, emulator.http_url, "Frank", chat_url=stand_in_url)
        pages.append(frank)
        frank.send("does this crash?")
        error = frank.page.locator(".notice.error")
        expect(error.locator(".notice-title"), "API Gateway's failure is not shown as an error").to_have_text(
            "API Gateway: Internal server error"
        )
        expect(error.locator(".notice-request"), "the request id is not shown").to_have_text("Request id req-crash-1")
        expect(frank.page.locator("#message"), "the failed text was lost").to_have_value("does this crash?")


def test_the_name_travels_in_the_query_string_and_the_token_as_a_subprotocol(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage]
) -> None:
    # API Gateway hands `$connect` the query string and headers; a stand-in server records what the page asked for
    # and, like `$connect`, selects the chat's protocol (a browser drops a handshake that selects none); it answers
    # the page's join at connect as the chat would.
    requested: list[tuple[str, str | None]] = []
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6In0.c2lnbmF0dXJl"

    def record(connection: ServerConnection) -> None:
        assert connection.request is not None
        requested.append((connection.request.path, connection.request.headers.get("Sec-WebSocket-Protocol")))
        for message in connection:
            if json.loads(message).get("action") == "join":
                joined = {"type": "joined", "room": "lobby", "connectionId": "z1", "name": "Zoë & co", "members": []}
                connection.send(json.dumps({**joined, "history": []}))

    with serve(record, "127.0.0.1", 0, subprotocols=[Subprotocol("websocket-chat")]) as stand_in:
        threading.Thread(target=stand_in.serve_forever, daemon=True).start()
        stand_in_url = f"ws://127.0.0.1:{stand_in.socket.getsockname()[1]}/dev?debug=1"
        zoe = ChatPage(browser, emulator.http_url, "Zoë & co", chat_url=stand_in_url, token=token)
        pages.append(zoe)
    stored = zoe.page.evaluate("JSON.stringify(window.localStorage)")
    assert "Zoë & co" in stored and token not in stored, f"the name should be remembered, the token not: {stored}"
    assert requested == [("/dev?debug=1&name=Zo%C3%AB+%26+co", f"websocket-chat, bearer.{token}")], (
        f"the page connected with {requested}, not the URL plus ?name= and the token as the bearer. subprotocol"
    )


def test_two_pages_chat_in_two_rooms_with_presence_members_history_and_whispers(
    browser: Browser, emulator: RunningEmulator, pages: list[ChatPage]
) -> None:
    ivy = ChatPage(browser, emulator.http_url, "Ivy")
    pages.append(ivy)
    ivy.page.fill("#room-name", "ops")
    ivy.page.click("#join-button")
    expect(ivy.page.locator("#rooms button[aria-current=true]"), "Ivy is not switched to #ops").to_have_text("#ops")
    ivy.send("ops before jack")

    jack = ChatPage(browser, emulator.http_url, "Jack")
    pages.append(jack)
    jack.send("/join ops")
    expect(jack.message("ops before jack"), "no history on join").to_have_count(1)
    expect(jack.page.locator("#members button"), "the member list is not #ops's").to_have_text(["Ivy", "Jack (you)"])
    expect(jack.page.locator("#members-note"), "a small room's member list is live: no note").to_be_hidden()
    expect(ivy.page.locator(".notice.presence").last, "Ivy saw no presence line").to_have_text(
        re.compile("Jack joined #ops")
    )

    jack.send("in ops")
    expect(ivy.message("in ops"), "the #ops message did not reach Ivy").to_have_count(1)
    expect(ivy.message("in ops").locator(".sender"), "Jack's message shown as Ivy's").to_have_text("Jack")
    expect(jack.message("in ops"), "Jack's own message is not marked as his").to_have_class(re.compile(r"\bmine\b"))

    jack.page.click("#rooms button[data-room=lobby]")
    jack.send("in the lobby")
    expect(jack.message("in ops"), "#ops stays visible in the lobby").to_be_hidden()
    ivy.page.click("#rooms button[data-room=lobby]")
    expect(ivy.message("in the lobby"), "the lobby message did not reach Ivy").to_have_count(1)
    expect(ivy.message("in ops"), "the #ops message shows in the lobby").to_be_hidden()

    ivy.send("/msg Jack psst")
    for page, label in ((jack, "Jack's"), (ivy, "Ivy's echo")):
        whisper = page.page.locator(".message.whisper").filter(has_text="psst")
        expect(whisper, f"{label} whisper missing").to_have_count(1)
        expect(whisper.locator(".sender"), f"{label} whisper sender").to_have_text("Ivy → Jack")

    jack.send("/leave ops")
    expect(ivy.page.locator(".notice.presence").filter(has_text="Jack left #ops"), "no left line").to_have_count(1)
    expect(jack.page.locator("#rooms button"), "#ops still listed for Jack").to_have_text(["#lobby"])


def test_the_composer_waits_for_the_join_at_connect(browser: Browser, emulator: RunningEmulator) -> None:
    """After a reconnect that join re-enters the room the composer sends to: a message sent sooner is refused."""
    context = browser.new_context()
    sockets: list[WebSocketRoute] = []
    received: list[str] = []

    def server(socket: WebSocketRoute) -> None:
        sockets.append(socket)
        socket.on_message(lambda message: received.append(str(message)))

    try:
        page = context.new_page()
        page.route_web_socket(re.compile(r"^wss?://"), server)  # a server that answers only when told to
        page.goto(emulator.http_url)
        page.fill("#name", "Early")
        page.click("#connect")
        expect(page.locator("#status-text"), "the page does not say it is joining").to_have_text("Joining #lobby…")
        expect(page.locator("#message"), "the composer is open before the join is answered").to_be_disabled()
        assert [json.loads(frame) for frame in received] == [{"action": "join", "room": "lobby"}], received
        joined = {"type": "joined", "room": "lobby", "connectionId": "c1", "name": "Early", "members": []}
        sockets[0].send(json.dumps({**joined, "history": []}))
        expect(page.locator("#status"), "the answered join does not open the page").to_have_attribute(
            "data-state", "connected"
        )
        expect(page.locator("#message"), "the composer stays closed after the join").to_be_enabled()
    finally:
        context.close()


def test_a_member_list_without_presence_says_it_is_not_live_and_offers_who(
    browser: Browser, emulator: RunningEmulator, artifacts: Path
) -> None:
    context = browser.new_context()
    sockets: list[WebSocketRoute] = []
    received: list[dict[str, object]] = []

    def server(socket: WebSocketRoute) -> None:
        sockets.append(socket)
        socket.on_message(lambda message: received.append(json.loads(str(message))))

    def answer(frame: dict[str, object]) -> None:
        sockets[0].send(json.dumps(frame))

    ada = {"name": "Ada", "connectionId": "a1"}
    me = {"name": "Me", "connectionId": "m1"}
    try:
        page = context.new_page()
        page.route_web_socket(re.compile(r"^wss?://"), server)
        page.goto(emulator.http_url)
        page.fill("#name", "Me")
        page.click("#connect")
        expect(page.locator("#status-text")).to_have_text("Joining #lobby…")
        # As an older server answers: no `presence` field, so presence frames keep the list live.
        answer({"type": "joined", "room": "lobby", "connectionId": "m1", "name": "Me", "members": [ada, me]})
        expect(page.locator("#members button"), "the lobby's members").to_have_text(["Ada", "Me (you)"])
        note = page.locator("#members-note")
        expect(note, "a live list needs no note").to_be_hidden()

        answer({"type": "presence-off", "room": "lobby", "maxMembers": 3})
        expect(note, "a list presence no longer follows must say so").to_be_visible()
        expect(note).to_contain_text("Not live: #lobby is too big for join and leave notices (over 3 members).")
        answer({"type": "presence-off", "room": "lobby", "maxMembers": 3})  # the room went under the cap and back
        expect(page.locator(".notice.presence").last).to_have_text(re.compile("#lobby has over 3 members now"))
        page.click("#members-refresh")
        bo = {"name": "Bo", "connectionId": "b1"}
        answer({"type": "members", "room": "lobby", "members": [ada, bo, me], "truncated": True})
        expect(page.locator("#members button"), "who refreshes the list").to_have_text(["Ada", "Bo", "Me (you)"])
        assert {"action": "who", "room": "lobby"} in received, f"the refresh must ask who: {received}"
        notices = page.locator(".notice.presence").filter(has_text="members now")
        expect(notices, "a room crossing the cap again is not announced twice").to_have_count(1)
        expect(note).to_contain_text("Only the first members are listed.")
        expect(note, "who does not make presence live again").to_contain_text("Not live")
        page.screenshot(path=str(artifacts / "chat-not-live.png"))

        page.fill("#room-name", "big")
        page.click("#join-button")
        big = {"type": "joined", "room": "big", "connectionId": "m1", "name": "Me", "members": [me], "truncated": False}
        answer({**big, "presence": False, "history": []})
        expect(page.locator("#rooms button[aria-current=true]")).to_have_text("#big")
        expect(note, "joined with presence false").to_contain_text(
            "Not live: #big is too big for join and leave notices."
        )

        answer({"type": "members", "room": "big", "members": [me], "truncated": False, "presence": True})
        expect(note, "who says the room is small enough again: the list is live").to_be_hidden()
        answer({"type": "members", "room": "big", "members": [me], "truncated": False, "presence": False})
        expect(note, "who says the room is too big").to_contain_text("Not live: #big")

        page.fill("#room-name", "small")
        page.click("#join-button")
        answer({**big, "room": "small", "presence": True, "history": []})
        expect(page.locator("#rooms button[aria-current=true]")).to_have_text("#small")
        expect(note, "a small room's list is live").to_be_hidden()
    finally:
        context.close()
