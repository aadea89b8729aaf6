"""Reload on save: when a function's code or the app definition changes, a new version takes over.

The watcher polls file times (a few dozen files: cheaper than a dependency). After a save settles, every Python
file of the functions' packages is compiled; a syntax error is printed with its line and the running version keeps
serving. Otherwise the routes are read afresh from the app definition (in a child process, so nothing the emulator
imported is reused), and `LocalCloud.deploy` starts the new version's workers, init included, before switching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.config import FunctionSpec, RouteSpec
from emulator.workers import Log

if TYPE_CHECKING:
    from emulator.cloud import LocalCloud

POLL_SECONDS = 0.25
"""How often file times are read; a save is acted on once they stay still for one more poll."""
RELOAD = "reload"
"""Log prefix of the reloader's lines."""
# Run in a child interpreter: prints the definition's routes and tables as JSON.
_DESCRIBE = """
import importlib, json, sys
definition = importlib.import_module(sys.argv[1])
print(json.dumps({
    "package": definition.HANDLERS_PACKAGE,
    "tables": repr(getattr(definition, "TABLES", None)),
    "routes": [
        [route.key, route.function.name, route.function.handler, list(route.function.environment),
         bool(getattr(route.function, "fans_out", False))]
        for route in definition.ROUTES
    ],
}))
"""


class DeployError(RuntimeError):
    """A new version could not start (an init failed); the previous one keeps serving."""


class SourceFiles:
    """The files under some directories and files, with their modification times, to tell what changed."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self._roots = tuple(roots)
        self._seen = self._scan()

    def _scan(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        for root in self._roots:
            paths = root.rglob("*") if root.is_dir() else [root]
            for path in paths:
                if "__pycache__" in path.parts:
                    continue
                try:
                    stat = path.stat()
                except OSError:  # deleted between listing and reading: it shows as removed next time
                    continue
                if path.is_file():
                    found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    def changed(self) -> list[Path]:
        """Files added, removed or modified since the last call."""
        current = self._scan()
        paths = current.keys() | self._seen.keys()
        changed = sorted(path for path in paths if current.get(path) != self._seen.get(path))
        self._seen = current
        return changed


def watched_roots(cloud: LocalCloud) -> list[Path]:
    """Every package the functions' zips hold, and the app definition the routes come from."""
    specs = [route.function for route in cloud.routes]
    roots = {spec.code_root / package for spec in specs for package in spec.packages}
    if cloud.options.definition_file is not None:
        roots.add(cloud.options.definition_file)
    return sorted(roots)


def syntax_errors(roots: Iterable[Path]) -> list[str]:
    """Each Python file that does not compile, as `path:line:column: message`, the line and a caret."""
    problems = []
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            if "__pycache__" in path.parts or path.suffix != ".py":
                continue
            try:
                compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
            except SyntaxError as error:
                text = (error.text or "").rstrip("\n")
                caret = " " * max((error.offset or 1) - 1, 0) + "^"
                problems.append(f"{path}:{error.lineno}:{error.offset}: {error.msg}\n    {text}\n    {caret}")
            except (OSError, ValueError) as error:
                problems.append(f"{path}: {error}")
    return problems


def describe_definition(definition_file: Path) -> tuple[tuple[RouteSpec, ...], str]:
    """The routes of the definition as saved now, and its tables' repr (to tell whether they changed)."""
    code_root = definition_file.parent.parent
    module = ".".join(definition_file.relative_to(code_root).with_suffix("").parts)
    finished = subprocess.run(
        [sys.executable, "-c", _DESCRIBE, module],
        cwd=code_root,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if finished.returncode != 0:
        raise DeployError(f"{definition_file} does not load:\n{finished.stderr.strip()}")
    document = json.loads(finished.stdout)
    specs: dict[str, FunctionSpec] = {}
    routes = []
    for key, name, handler, environment, fans_out in document["routes"]:
        spec = specs.setdefault(
            name, FunctionSpec(name, handler, code_root, (document["package"],), tuple(environment), fans_out)
        )
        routes.append(RouteSpec(key, spec))
    return tuple(routes), str(document["tables"])


async def watch(cloud: LocalCloud, log: Log) -> None:
    """Until cancelled: on every settled change, reload (and say in the terminal what happened)."""
    files = SourceFiles(watched_roots(cloud))
    tables: str | None = None
    if cloud.options.definition_file is not None:
        # It loaded at start; if it does not now, the next reload says why.
        with contextlib.suppress(DeployError):
            tables = (await asyncio.to_thread(describe_definition, cloud.options.definition_file))[1]
    while True:
        await asyncio.sleep(POLL_SECONDS)
        changed = files.changed()
        if not changed:
            continue
        while True:  # the editor may still be writing: wait until one poll sees nothing new
            await asyncio.sleep(POLL_SECONDS)
            more = files.changed()
            if not more:
                break
            changed += more
        try:
            await reload_once(cloud, log, changed, tables)
        except Exception as error:  # the watcher must outlive any one failed reload
            log(RELOAD, f"reload failed: {error!r}; still serving version {cloud.version}")


async def reload_once(cloud: LocalCloud, log: Log, changed: list[Path], tables: str | None) -> bool:
    """Check, then deploy a new version; False (and the reason in the terminal) when the old one keeps serving."""
    names = ", ".join(sorted({_relative(path) for path in changed}))
    log(RELOAD, f"changed: {names}")
    keep = f"still serving version {cloud.version}; fix it and save again"
    problems = syntax_errors(watched_roots(cloud))
    if problems:
        for problem in problems:
            for line in problem.splitlines():
                log(RELOAD, line)
        log(RELOAD, keep)
        return False
    routes = cloud.routes
    try:
        if cloud.options.definition_file is not None:
            routes, now_tables = await asyncio.to_thread(describe_definition, cloud.options.definition_file)
            if tables is not None and now_tables != tables:
                log(RELOAD, "the definition's tables changed: restart the emulator to create them")
        await cloud.deploy(routes)
    except DeployError as error:
        for line in str(error).splitlines():
            log(RELOAD, line)
        log(RELOAD, keep)
        return False
    except ValueError as error:  # EmulatorConfigError: a function reads a variable the emulator cannot provide
        log(RELOAD, str(error))
        log(RELOAD, keep)
        return False
    log(RELOAD, f"version {cloud.version} serving (new workers, fresh init; open connections stay)")
    return True


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
