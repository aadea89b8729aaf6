"""`python -m client token`: a JWT the authorizer accepts, only the token on stdout, clear errors (exit 2).

HS256 with a secret from the environment, else RS256 with the local issuer's key. End to end: the emulator with
`--auth jwt` and no `CHAT_TOKEN_SECRET` serves its own issuer and prints how to mint; a token minted that way lets
`python -m client smoke URL --token ...` (or `CHAT_TOKEN`) pass, and without one the smoke test fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from app.definition import DEV_TOKEN_SECRET_VARIABLE, TOKEN_VARIABLE
from client import mint
from emulator.config import load_stack_config
from emulator.issuer import LocalIssuer, SigningKey, load_saved
from emulator.testing import RunningEmulator, running_emulator
from handlers import tokens
from tests.client.test_page import ChatPage

REPOSITORY = Path(__file__).resolve().parents[2]
SECRET = "client-test-secret-0123456789-abcdefghijklmnopq"


def token_command(*arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m client ARGUMENTS` with `environment` in place of the caller's CHAT_TOKEN_SECRET."""
    env = {key: value for key, value in os.environ.items() if key not in (DEV_TOKEN_SECRET_VARIABLE, TOKEN_VARIABLE)}
    env.update(environment or {})
    return subprocess.run(
        [sys.executable, "-m", "client", *arguments],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_token_is_all_stdout_holds_and_verifies_with_the_secret() -> None:
    minted = token_command("token", "--name", "alice", "--ttl", "2h", environment={DEV_TOKEN_SECRET_VARIABLE: SECRET})
    assert minted.returncode == 0, f"minting failed: {minted.stderr}"
    assert minted.stdout.endswith("\n") and minted.stdout.count("\n") == 1, f"stdout: one line, {minted.stdout!r}"
    claims = tokens.verify_with_secret(SECRET.encode(), minted.stdout.strip(), tokens.Expectations())
    assert claims.name == "alice", f"the token must carry the name, got {claims.name!r}"
    assert abs(claims.expires_at - (time.time() + 7200)) < 60, f"--ttl 2h must expire in two hours: {claims}"
    assert SECRET not in minted.stdout + minted.stderr, "the secret must never be printed"


def test_secret_env_reads_another_variable() -> None:
    minted = token_command("token", "--name", "bob", "--secret-env", "MY_SECRET", environment={"MY_SECRET": SECRET})
    assert minted.returncode == 0, f"--secret-env MY_SECRET failed: {minted.stderr}"
    verified = tokens.verify_with_secret(SECRET.encode(), minted.stdout.strip(), tokens.Expectations())
    assert verified.name == "bob", "signed with MY_SECRET"


def test_audience_goes_into_hs256_tokens() -> None:
    minted = token_command(
        "token", "--name", "bob", "--audience", "chat", environment={DEV_TOKEN_SECRET_VARIABLE: SECRET}
    )
    verified = tokens.verify_with_secret(SECRET.encode(), minted.stdout.strip(), tokens.Expectations(audience="chat"))
    assert verified.name == "bob", f"--audience chat: {minted.stderr}"


def test_without_a_secret_the_local_issuers_key_signs(tmp_path: Path) -> None:
    issuer = LocalIssuer([SigningKey.generate("RS256", kid="local-1")], audience="chat-local").start()
    try:
        issuer.save(tmp_path / "issuer.json")
        minted = token_command("token", "--name", "ivy", "--issuer-key", str(tmp_path / "issuer.json"))
        assert minted.returncode == 0, f"minting with the local issuer failed: {minted.stderr}"
        keys = tokens.KeySet(issuer.url)
        claims = tokens.verify_with_keys(keys, minted.stdout.strip(), tokens.Expectations(issuer.url, "chat-local"))
        assert (claims.subject, claims.name) == ("local|ivy", "ivy"), f"local issuer token claims: {claims}"
    finally:
        issuer.stop()
    assert (tmp_path / "issuer.json").stat().st_mode & 0o077 == 0, "the key file must be readable by its owner only"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("30d", 2592000), (" 2h ", 7200)]
)
def test_ttl_units(text: str, seconds: int) -> None:
    assert mint.ttl_seconds(text) == seconds, f"--ttl {text!r} must be {seconds} s"


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        (
            ["--name", "alice", "--issuer-key", "/nonexistent/issuer.json"],
            {},
            f"{DEV_TOKEN_SECRET_VARIABLE} is not set",
        ),
        (["--name", "alice"], {DEV_TOKEN_SECRET_VARIABLE: "too-short"}, "at least 32 bytes, got 9"),
        (["--name", "alice", "--secret-env", "NOPE"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "NOPE is not set"),
        (["--name", "alice", "--secret-env", "not a name"], {}, "must name an environment variable"),
        (["--name", " alice"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "--name: "),
        (["--name", "x" * 33], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "--name: "),
        (["--name", "alice", "--ttl", "31d"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "from 1s to 30d"),
        (["--name", "alice", "--ttl", "0s"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "from 1s to 30d"),
        (["--name", "alice", "--ttl", "1w"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "optional unit s, m, h or d"),
        (["--name", "alice", "--ttl=-5m"], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "optional unit s, m, h or d"),
        ([], {DEV_TOKEN_SECRET_VARIABLE: SECRET}, "--name"),
    ],
)
def test_a_bad_argument_or_secret_exits_2_with_the_reason(
    arguments: list[str],
    environment: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(DEV_TOKEN_SECRET_VARIABLE, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exited:
        mint.run(arguments)
    out, err = capsys.readouterr()
    assert exited.value.code == 2, f"{arguments}: exit status {exited.value.code}, not 2"
    assert out == "", f"{arguments}: nothing may reach stdout on failure, got {out!r}"
    assert expected in err, f"{arguments}: stderr must say {expected!r}, got {err!r}"
    assert "too-short" not in err, "the error must not repeat the secret"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("issuer") / "local-issuer.json"


@pytest.fixture(scope="module")
def auth_emulator(key_file: Path) -> Iterator[RunningEmulator]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(DEV_TOKEN_SECRET_VARIABLE, raising=False)
        with running_emulator(extra_args=("--auth", "jwt", "--issuer-key", str(key_file))) as emulator:
            yield emulator


def printed_mint_command(emulator: RunningEmulator) -> list[str]:
    """The mint command from the emulator's ready lines."""
    match = re.search(r"mint one with:  (python -m client token --name alice)", emulator.output_text())
    assert match, f"the ready lines must show how to mint:\n{emulator.output_text()}"
    return match[1].split()


def test_a_minted_token_lets_smoke_pass_against_an_emulator_with_auth(
    auth_emulator: RunningEmulator, key_file: Path
) -> None:
    command = printed_mint_command(auth_emulator)
    minted = token_command(*command[3:], "--issuer-key", str(key_file))
    assert minted.returncode == 0, f"the printed mint command failed: {minted.stderr}"
    smoke = token_command("smoke", auth_emulator.ws_url, "--token", minted.stdout.strip(), "--timeout", "15")
    assert smoke.returncode == 0, f"smoke with the minted token failed: {smoke.stderr}"
    assert smoke.stdout.startswith("smoke ok:"), f"smoke's summary: {smoke.stdout!r}"
    assert minted.stdout.strip() not in smoke.stdout, "smoke must not print the token"
    assert "RS256 tokens of the local issuer http://127.0.0.1:" in auth_emulator.output_text(), "ready lines"


def test_smoke_without_a_token_is_refused_with_401(auth_emulator: RunningEmulator) -> None:
    smoke = token_command("smoke", auth_emulator.ws_url, "--timeout", "15")
    assert smoke.returncode == 1, f"smoke without a token must fail: {smoke.stdout} {smoke.stderr}"
    assert "HTTP 401" in smoke.stderr, f"the failure must name the 401: {smoke.stderr!r}"


@pytest.mark.browser
def test_the_page_connects_with_a_token_under_the_tokens_name(
    browser: Browser, auth_emulator: RunningEmulator, artifacts: Path, key_file: Path
) -> None:
    tess = ChatPage(browser, auth_emulator.http_url, "not-this-name", token=load_saved(key_file).mint("Tess", 600))
    try:
        expect(
            tess.page.locator(".notice.info .notice-title").last,
            "with a token, the page must not claim the name field's name",
        ).to_have_text("Connected with a token: your name is the one it carries")
        tess.send("hello from a page with a token")
        line = tess.message("hello from a page with a token")
        expect(line.locator(".sender"), "the page must show the token's name, not the name field's").to_have_text(
            "Tess (you)"
        )
        tess.page.screenshot(path=str(artifacts / "chat-token.png"))
    finally:
        tess.close()
    assert '"detail": "token from the protocol"' in auth_emulator.output_text(), (
        "the page's token must reach the authorizer as a subprotocol, not in the URL"
    )


@pytest.mark.browser
def test_the_page_ignores_a_url_parameter_pointing_elsewhere(browser: Browser, auth_emulator: RunningEmulator) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{auth_emulator.http_url}?url=wss://attacker.example/dev&stage=dev")
        expect(page.locator("#url"), "?url= must not choose the server").to_have_value(auth_emulator.ws_url)
    finally:
        context.close()


@pytest.mark.browser
def test_the_page_never_sends_a_token_over_plain_ws_to_another_host(
    browser: Browser, auth_emulator: RunningEmulator
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        attempts: list[str] = []
        page.on("websocket", lambda socket: attempts.append(socket.url))
        page.goto(auth_emulator.http_url)
        page.fill("#url", "ws://chat.example.com/dev")
        page.fill("#token", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
        page.click("#connect")
        expect(page.locator("#url-problem"), "a plain ws:// host with a token must be refused").to_contain_text(
            "only sent over wss://"
        )
        page.fill("#url", "ws://localhost:1/dev")
        with page.expect_websocket() as opened:
            page.click("#connect")
        assert opened.value.url == "ws://localhost:1/dev", f"ws:// to this machine is allowed: {opened.value.url}"
        assert not [url for url in attempts if "example.com" in url], f"the page opened {attempts}"
    finally:
        context.close()


def test_the_page_may_not_be_framed(auth_emulator: RunningEmulator) -> None:
    for path in ("", "chat.js"):
        with urllib.request.urlopen(auth_emulator.http_url + path, timeout=10) as response:
            headers = response.headers
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'", f"/{path}: {dict(headers)}"
        assert headers["X-Frame-Options"] == "DENY", f"/{path}: {dict(headers)}"


def test_smoke_takes_the_token_from_the_environment(auth_emulator: RunningEmulator, key_file: Path) -> None:
    token = load_saved(key_file).mint("envy", 600)
    smoke = token_command("smoke", auth_emulator.ws_url, "--timeout", "15", environment={TOKEN_VARIABLE: token})
    assert smoke.returncode == 0, f"smoke with {TOKEN_VARIABLE} in the environment failed: {smoke.stderr}"


def test_make_smoke_never_puts_the_token_on_a_command_line() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "smoke", "URL=ws://127.0.0.1:1/dev", "TOKEN=s3cr3t-token-value"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "client smoke" in dry_run.stdout, f"make -n smoke printed no smoke command: {dry_run.stdout}"
    assert "s3cr3t-token-value" not in dry_run.stdout + dry_run.stderr, "the recipe echoes the token"
    recipe = REPOSITORY.joinpath("Makefile").read_text().split("\nsmoke: $(INSTALLED)\n", 1)[1].split("\n\n", 1)[0]
    assert all(line.startswith("\t@") for line in recipe.splitlines()), f"smoke's recipe lines must be silent: {recipe}"


def test_the_stacks_audience_goes_into_hs256_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.team.yaml").write_text(
        "config:\n  websocket-chat:auth: jwt\n  websocket-chat:jwtAudience: team-chat\n", encoding="utf-8"
    )
    monkeypatch.setattr(mint, "load_stack_config", lambda stack: load_stack_config(stack, tmp_path))
    monkeypatch.setenv(DEV_TOKEN_SECRET_VARIABLE, SECRET)
    assert mint.run(["--name", "tia", "--stack", "team"]) == 0
    token = capsys.readouterr().out.strip()
    verified = tokens.verify_with_secret(SECRET.encode(), token, tokens.Expectations(audience="team-chat"))
    assert verified.name == "tia", "the token must carry the stack's jwtAudience"
    with pytest.raises(SystemExit) as exited:
        mint.run(["--name", "tia", "--stack", "nowhere"])
    assert exited.value.code == 2 and "--stack nowhere" in capsys.readouterr().err, "an unknown stack exits 2"
