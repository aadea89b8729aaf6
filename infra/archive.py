"""Deterministic code archives: each function's zip holds its handler module and the `handlers` modules it imports.

Standard library only (no Pulumi import), so benchmarks and tools can build the exact bytes that get deployed.

What goes in: `handlers/__init__.py`, the function's handler module, and every module of the `handlers` package
that it imports, transitively, found by parsing `import` statements with `ast` (imports inside functions and
`TYPE_CHECKING` blocks count too: over-including a small module is harmless, missing one breaks the function).
Nothing else: no `__pycache__`, tests, virtualenv or unrelated handlers, so a change to one handler changes only
the archives that contain it. A function that lists `libraries` (the authorizer) also ships the files of its pinned
wheels for its architecture (`infra.wheels.wheel_directory`), unpacked at the zip's root as pip would install them.

Same source, same bytes on one machine: entries are sorted, every timestamp is 1980-01-01 00:00 (the zip epoch),
permissions are fixed at 0644 and entries are deflated at a fixed level 9. Deflate is deterministic for one zlib
build, so the CI image that previews and deploys always produces the same zip; another zlib build (another machine,
another Python) may produce other, equally valid bytes. That is the trade-off for zips about half the size of
stored ones: the function's `source_code_hash` therefore comes from `content_hash` (the members' names and bytes),
not from the zip bytes, so a different zlib never looks like a code change.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from app.definition import HANDLERS_PACKAGE, Function

SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the `handlers/` package (the repository root)."""

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest timestamp a zip entry can carry; used for every entry so builds do not depend on file times."""

FILE_MODE = 0o100644
"""A regular file readable by everyone (Lambda runs the code as a different user than the one that zipped it)."""

COMPRESS_LEVEL = 9
"""zlib's highest level, fixed so the bytes never depend on a library default."""


class ArchiveError(ValueError):
    """The handler module, or a `handlers` module it imports, cannot be found or parsed."""


def archive_members(function: Function, source_root: Path | None = None) -> list[str]:
    """Paths inside the function's zip (POSIX, relative to the zip root), sorted.

    `source_root` is the directory containing the `handlers/` package; it defaults to the repository root.
    """
    root = source_root if source_root is not None else SOURCE_ROOT
    package_init = PurePosixPath(HANDLERS_PACKAGE, "__init__.py")
    if not (root / package_init).is_file():
        raise ArchiveError(f"{root / package_init} is missing: the {HANDLERS_PACKAGE} package must have one")
    entry = _module_path(root, f"{HANDLERS_PACKAGE}.{function.module}")
    if entry is None:
        raise ArchiveError(
            f"function {function.name!r} runs {function.handler} but {root / HANDLERS_PACKAGE / function.module}.py "
            "does not exist"
        )
    members: set[PurePosixPath] = set()
    pending = [package_init, entry]
    while pending:
        member = pending.pop()
        if member in members:
            continue
        members.add(member)
        pending.extend(_package_inits(member) - members)
        pending.extend(_imported_modules(root, member) - members)
    return sorted(str(member) for member in members)


Entry = tuple[str, Callable[[], bytes]]
"""A zip member's path and how to read its bytes."""


def archive_entries(function: Function, source_root: Path | None = None, wheels: Path | None = None) -> list[Entry]:
    """Every member of the function's zip, sorted: its `handlers` modules, then or among them its wheels' files.

    `wheels` is the directory of the function's wheels for the target architecture; it is required exactly when the
    function lists `libraries`. Two sources providing one path is an ArchiveError rather than a silent overwrite.
    """
    root = source_root if source_root is not None else SOURCE_ROOT
    entries: dict[str, Callable[[], bytes]] = {
        member: functools.partial((root / member).read_bytes) for member in archive_members(function, root)
    }
    if function.libraries and wheels is None:
        raise ArchiveError(f"function {function.name!r} ships {', '.join(function.libraries)}: give its wheels")
    if not function.libraries and wheels is not None:
        raise ArchiveError(f"function {function.name!r} ships no libraries, yet wheels were given")
    for wheel in sorted(wheels.glob("*.whl")) if wheels is not None else []:
        with zipfile.ZipFile(wheel) as unpacked:
            for info in unpacked.infolist():
                name = info.filename
                if info.is_dir() or "__pycache__" in PurePosixPath(name).parts:
                    continue
                if name in entries or name.startswith(f"{HANDLERS_PACKAGE}/"):
                    raise ArchiveError(f"{wheel.name} provides {name}, which the zip already holds")
                # Read now, from the wheel already open: opening it again per member cost more than the reading.
                entries[name] = functools.partial(bytes, unpacked.read(info))
    shipped = {PurePosixPath(name).parts[0].split(".")[0] for name in entries}
    missing = sorted(set(function.libraries) - shipped)
    if missing:
        raise ArchiveError(f"function {function.name!r} ships {', '.join(missing)}, which none of its wheels provide")
    return sorted(entries.items())


def build_archive(function: Function, source_root: Path | None = None, wheels: Path | None = None) -> bytes:
    """The function's zip, byte-identical for identical sources (and wheels) and the same zlib build."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for member, read in archive_entries(function, source_root, wheels):
            info = zipfile.ZipInfo(member, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the permission bits below mean the same on every build machine
            info.external_attr = FILE_MODE << 16
            # The level is passed per entry: a ZipInfo does not inherit the ZipFile's.
            archive.writestr(info, read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
    return buffer.getvalue()


def content_hash(function: Function, source_root: Path | None = None, wheels: Path | None = None) -> str:
    """Base64 SHA-256 of what the function's zip holds, for Lambda's `source_code_hash`; independent of zlib.

    It hashes, for each member in the archive's sorted order: the UTF-8 path, a NUL byte, the content's length as
    8 big-endian bytes, then the content. Lengths keep the encoding unambiguous (no two different member lists hash
    the same stream). Metadata is fixed by `build_archive`, so names and bytes are all that can differ.
    """
    digest = hashlib.sha256()
    for member, read in archive_entries(function, source_root, wheels):
        data = read()
        digest.update(member.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return base64.b64encode(digest.digest()).decode("ascii")


def write_archive(
    function: Function, directory: Path, source_root: Path | None = None, wheels: Path | None = None
) -> tuple[Path, bytes]:
    """Build the function's zip and store it as `<directory>/<function name>.zip` (with wheels,
    `<name>-<wheel set>.zip`, e.g. `authorizer-3.13-arm64.zip`); returns the path and the bytes.

    The file is replaced atomically and only when its bytes change, so concurrent readers never see half a zip. A
    zip whose recorded content hash (`<name>.zip.sha256`) still matches is reused unbuilt: deflating the
    authorizer's libraries takes seconds, hashing them milliseconds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    # Wheels make a zip architecture-specific: a file per wheel set, so building one never replaces another's.
    path = directory / (f"{function.name}.zip" if wheels is None else f"{function.name}-{wheels.name}.zip")
    record = path.with_name(f"{path.name}.sha256")
    expected = content_hash(function, source_root, wheels)
    if path.is_file() and record.is_file() and record.read_text(encoding="ascii") == expected:
        return path, path.read_bytes()
    data = build_archive(function, source_root, wheels)
    if not path.is_file() or path.read_bytes() != data:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    partial_record = record.with_name(f".{record.name}.{os.getpid()}.partial")
    partial_record.write_text(expected, encoding="ascii")
    os.replace(partial_record, record)
    return path, data


def _module_path(root: Path, dotted: str) -> PurePosixPath | None:
    """The file of a module of the handlers package (`handlers.x` -> `handlers/x.py`), or None if there is none."""
    parts = dotted.split(".")
    if parts[0] != HANDLERS_PACKAGE or any(not part.isidentifier() for part in parts):
        return None
    module = PurePosixPath(*parts).with_suffix(".py")
    if (root / module).is_file():
        return module
    package = PurePosixPath(*parts, "__init__.py")
    if (root / package).is_file():
        return package
    return None


def _package_inits(member: PurePosixPath) -> set[PurePosixPath]:
    """The `__init__.py` of every package enclosing a module (importing `handlers.a.b` runs `handlers/a/__init__`)."""
    return {PurePosixPath(*member.parts[:depth], "__init__.py") for depth in range(1, len(member.parts))}


def _parse(source: bytes, filename: str) -> ast.Module:
    """The module's syntax tree; a spurious SystemError from CPython 3.11's AST depth check ("AST constructor
    recursion depth mismatch", python/cpython gh-106905) is retried, since parsing is pure."""
    for _ in range(2):
        try:
            return ast.parse(source, filename=filename)
        except SystemError:
            continue
    return ast.parse(source, filename=filename)


class _Import(NamedTuple):
    """One imported module as written: `import a.b` is ("a.b", 0, None), `from ..a import b` is ("a", 2, ("b",))."""

    module: str
    level: int
    names: tuple[str, ...] | None
    """The names a `from` import takes; None for a plain `import`."""


@functools.lru_cache(maxsize=256)
def _imports(source: bytes, filename: str) -> tuple[_Import, ...]:
    """Every import statement of a module, found once per source (every program run asks for each archive's members)."""
    found: list[_Import] = []
    for node in ast.walk(_parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [_Import(alias.name, 0, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(_Import(node.module or "", node.level, tuple(alias.name for alias in node.names)))
    return tuple(found)


def _imported_modules(root: Path, member: PurePosixPath) -> set[PurePosixPath]:
    """The handlers-package modules that one module imports (absolute or relative)."""
    source = (root / member).read_bytes()
    try:
        imports = _imports(source, str(member))
    except SyntaxError as error:
        raise ArchiveError(f"{member} cannot be parsed: {error}") from None
    package = list(member.parent.parts)
    found: set[PurePosixPath] = set()
    for statement in imports:
        if statement.names is None:
            if statement.module.split(".")[0] == HANDLERS_PACKAGE:
                found.add(_require(root, member, statement.module))
            continue
        if statement.level:
            base = package[: len(package) - (statement.level - 1)]  # level 1 is the module's own package
            dotted = ".".join([*base, *([statement.module] if statement.module else [])])
        else:
            dotted = statement.module
        if dotted.split(".")[0] != HANDLERS_PACKAGE:
            continue
        found.add(_require(root, member, dotted))
        for name in statement.names:
            # `from handlers import environment` names a module; `from handlers.x import name` usually does not.
            submodule = _module_path(root, f"{dotted}.{name}")
            if submodule is not None:
                found.add(submodule)
    return found


def _require(root: Path, importer: PurePosixPath, dotted: str) -> PurePosixPath:
    path = _module_path(root, dotted)
    if path is None:
        raise ArchiveError(f"{importer} imports {dotted}, which is not a module under {root / HANDLERS_PACKAGE}")
    return path
