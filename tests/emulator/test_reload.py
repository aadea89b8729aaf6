"""Reload on save: a saved handler or definition serves the next invocation with a fresh init; connections stay open;
a syntax or init error is printed and the running version keeps serving until the file is fixed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from emulator.config import FunctionSpec, RouteSpec
from emulator.reload import SourceFiles, describe_definition, syntax_errors
from handlers import environment
from tests.emulator.conftest import CloudThread, cloud_options, receive_json, wait_for

RELOAD_TIMEOUT_SECONDS = 30.0

HANDLER = """
import json, os, urllib.parse, urllib.request
VERSION = {version!r}
{init}

def handler(event, context):
    return reply(event, VERSION)

def shout(event, context):
    return reply(event, VERSION.upper())

def reply(event, text):
    # The callback API as a handler reaches it: ENDPOINT_URL, @connections/{{id}}.
    connection_id = urllib.parse.quote(event["requestContext"]["connectionId"], safe="")  # ids hold "/" and "+"
    url = os.environ["ENDPOINT_URL"] + "/@connections/" + connection_id
    body = json.dumps({{"version": text, "pid": os.getpid()}}).encode()
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=25).close()
    return {{"statusCode": 200}}
"""

DEFINITION = """
from dataclasses import dataclass

@dataclass(frozen=True)
class Function:
    name: str
    handler: str
    environment: tuple[str, ...] = ("ENDPOINT_URL",)

@dataclass(frozen=True)
class Route:
    key: str
    function: Function

HANDLERS_PACKAGE = "reloadable"
ROUTES = (
    Route("$default", Function("app", "reloadable.app.handler")),
{extra}
)
"""


def write_handler(root: Path, version: str, init: str = "") -> None:
    (root / "reloadable" / "app.py").write_text(HANDLER.format(version=version, init=init), encoding="utf-8")


def write_definition(root: Path, extra: str = "") -> None:
    (root / "app" / "definition.py").write_text(DEFINITION.format(extra=extra), encoding="utf-8")


def ask(cloud: CloudThread, client: ClientConnection, action: str = "hello") -> dict[str, Any]:
    client.send(json.dumps({"action": action}))
    answer = receive_json(client, timeout=40)
    assert "version" in answer, f"the handler did not answer: {answer}\n{cloud.log_text()}"
    return answer


def wait_for_log(cloud: CloudThread, text: str) -> None:
    wait_for(lambda: text in cloud.log_text(), RELOAD_TIMEOUT_SECONDS, f"no {text!r} in the log:\n{cloud.log_text()}")


@pytest.fixture
def code_root(tmp_path: Path) -> Path:
    (tmp_path / "reloadable").mkdir()
    (tmp_path / "reloadable" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "app").mkdir()
    write_handler(tmp_path, "one")
    write_definition(tmp_path)
    return tmp_path


@pytest.fixture
def reloading(code_root: Path) -> Iterator[CloudThread]:
    """A cloud serving `reloadable/app.py` from `code_root`, watching it and the definition next to it."""
    spec = FunctionSpec("app", "reloadable.app.handler", code_root, ("reloadable",), (environment.ENDPOINT_URL,))
    options = cloud_options(
        routes=(RouteSpec("$default", spec),),
        reload=True,
        definition_file=code_root / "app" / "definition.py",
        function_timeout_seconds=28.0,  # generous: a loaded machine must not turn a slow answer into a failure
    )
    running = CloudThread(options)
    running.start()
    yield running
    running.stop()


def test_a_saved_handler_serves_the_next_message_with_a_fresh_init_and_the_connection_stays(
    reloading: CloudThread, code_root: Path
) -> None:
    with reloading.connect() as client:
        first = ask(reloading, client)
        assert first["version"] == "one", f"the first version must serve: {first}"
        write_handler(code_root, "two")
        wait_for_log(reloading, "version 2 serving")
        second = ask(reloading, client)
        assert second["version"] == "two", f"after the save the new code must answer on the same connection: {second}"
        assert second["pid"] != first["pid"], "the new version must run in a new worker (a fresh init)"


def test_a_syntax_error_is_shown_and_the_old_code_serves_until_it_is_fixed(
    reloading: CloudThread, code_root: Path
) -> None:
    with reloading.connect() as client:
        (code_root / "reloadable" / "app.py").write_text("def handler(event, context:\n", encoding="utf-8")
        wait_for_log(reloading, "still serving version 1")
        log = reloading.log_text()
        assert f"{code_root / 'reloadable' / 'app.py'}:1:" in log, f"the error must name the file and line:\n{log}"
        assert "def handler(event, context:" in log, f"the offending line must be shown:\n{log}"
        assert ask(reloading, client)["version"] == "one", "the old code must keep serving while the file is broken"
        write_handler(code_root, "fixed")
        wait_for_log(reloading, "version 2 serving")
        assert ask(reloading, client)["version"] == "fixed", "once fixed, the new code must serve"


def test_an_init_error_keeps_the_old_version(reloading: CloudThread, code_root: Path) -> None:
    with reloading.connect() as client:
        write_handler(code_root, "broken", init="raise RuntimeError('no config at import')")
        wait_for_log(reloading, "still serving version 1")
        assert "no config at import" in reloading.log_text(), "the init error must be shown"
        assert ask(reloading, client)["version"] == "one", "the old code must keep serving after a failed init"


def test_a_saved_definition_adds_a_route(reloading: CloudThread, code_root: Path) -> None:
    with reloading.connect() as client:
        assert ask(reloading, client, "shout")["version"] == "one", "no shout route yet: $default answers"
        write_definition(code_root, extra='    Route("shout", Function("shout", "reloadable.app.shout")),')
        wait_for_log(reloading, "version 2 serving")
        assert ask(reloading, client, "shout")["version"] == "ONE", "the new route must serve on the open connection"


def test_only_settled_changes_count(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "a.py"
    module.write_text("A = 1\n", encoding="utf-8")
    files = SourceFiles([tmp_path / "pkg"])
    assert files.changed() == [], "nothing changed yet"
    module.write_text("A = 22\n", encoding="utf-8")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    assert files.changed() == [module], "a modified file shows, compiled caches do not"
    module.unlink()
    assert files.changed() == [module], "a removed file shows too"


def test_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("x = (1,\n", encoding="utf-8")
    (tmp_path / "good.py").write_text("x = 1\n", encoding="utf-8")
    [problem] = syntax_errors([tmp_path])
    assert problem.startswith(f"{tmp_path / 'bad.py'}:1:"), f"file and line first: {problem}"


def test_the_real_definition_describes_the_real_routes() -> None:
    from app import definition  # noqa: PLC0415 - compared with what the child process reads

    routes, tables = describe_definition(Path(definition.__file__))
    assert [route.key for route in routes] == [route.key for route in definition.ROUTES], "route keys"
    assert [route.function.handler for route in routes] == [route.function.handler for route in definition.ROUTES]
    assert tables == repr(definition.TABLES), "the tables, to tell a change that needs a restart"
