"""The code archives: exactly the modules each function runs, byte-identical for identical sources."""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest

from app import definition
from app.definition import Function
from infra import archive
from infra.archive import ArchiveError, archive_members, build_archive, content_hash, write_archive

ROUTE_FUNCTIONS = definition.FUNCTIONS
ALL_FUNCTIONS = (*definition.FUNCTIONS, definition.AUTHORIZER)
HANDLERS_ONLY = tuple(function for function in ALL_FUNCTIONS if not function.libraries)
"""Functions whose zip is their modules alone (the authorizer's also ships wheels: tests/hardening/)."""


def fixture_function(module: str) -> Function:
    return Function(name=module.replace("_", "-"), module=module, environment=(), table_access=(), callback_methods=())


@pytest.fixture
def package(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Writes a `handlers` package under a temporary source root; returns the root."""

    def write(files: dict[str, str]) -> Path:
        for relative, text in files.items():
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return tmp_path

    return write


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(BytesIO(data)) as opened:
        return opened.namelist()


def zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(BytesIO(data)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def hash_of_entries(entries: dict[str, bytes]) -> str:
    """The documented `content_hash` encoding, computed from a zip's entries (an independent oracle)."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(name.encode() + b"\0" + len(entries[name]).to_bytes(8, "big") + entries[name])
    return base64.b64encode(digest.digest()).decode()


def rezipped(data: bytes, level: int) -> bytes:
    """The same entries and metadata deflated at another level: other bytes, as another zlib build could give."""
    buffer = BytesIO()
    with zipfile.ZipFile(BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return buffer.getvalue()


RUNTIME_IMPORTS = """
import importlib, json, sys
found = {}
for module in sys.argv[1:]:
    for name in [name for name in sys.modules if name == "handlers" or name.startswith("handlers.")]:
        del sys.modules[name]  # each handler's import starts from no handlers module, as in a fresh interpreter
    importlib.import_module("handlers." + module)
    loaded = [m for n, m in sys.modules.items() if n == "handlers" or n.startswith("handlers.")]
    found[module] = sorted(m.__file__ for m in loaded if getattr(m, "__file__", None))
print(json.dumps(found))
"""


@functools.cache
def _runtime_imports() -> dict[str, list[str]]:
    environment = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    completed = subprocess.run(
        [sys.executable, "-c", RUNTIME_IMPORTS, *sorted({function.module for function in ALL_FUNCTIONS})],
        cwd=archive.SOURCE_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {
        module: sorted(Path(file).resolve().relative_to(archive.SOURCE_ROOT).as_posix() for file in files)
        for module, files in json.loads(completed.stdout).items()
    }


def runtime_imports(module: str) -> list[str]:
    """The `handlers` modules that importing a handler really loads, as archive paths (an independent oracle).

    One interpreter imports every handler in turn, forgetting the `handlers` modules between them."""
    return _runtime_imports()[module]


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda function: function.name)
def test_real_archive_holds_exactly_the_modules_the_handler_imports(function: Function) -> None:
    members = archive_members(function)
    assert members == runtime_imports(function.module), (
        f"{function.name}.zip members differ from the handlers modules that importing handlers.{function.module} loads"
    )
    if not function.libraries:
        assert zip_names(build_archive(function)) == members, f"{function.name}.zip entries differ from archive_members"


@pytest.mark.parametrize("function", ROUTE_FUNCTIONS, ids=lambda function: function.name)
def test_real_archive_holds_its_handler_and_no_other_entry_point(function: Function) -> None:
    members = archive_members(function)
    own = f"handlers/{function.module}.py"
    assert own in members, f"{function.name}.zip lacks its handler module {own}"
    assert "handlers/__init__.py" in members, f"{function.name}.zip lacks handlers/__init__.py"
    others = {f"handlers/{other.module}.py" for other in ALL_FUNCTIONS if other.module != function.module}
    assert not others & set(members), f"{function.name}.zip contains other functions' handlers: {others & set(members)}"
    assert all(member.startswith("handlers/") and member.endswith(".py") for member in members), (
        f"{function.name}.zip holds something other than handlers/*.py: {members}"
    )


@pytest.mark.parametrize("function", HANDLERS_ONLY, ids=lambda function: function.name)
def test_real_archive_is_byte_identical_across_builds_and_file_times(function: Function, tmp_path: Path) -> None:
    first = build_archive(function)
    copy = tmp_path / "copy"
    for member in archive_members(function):
        target = copy / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((archive.SOURCE_ROOT / member).read_bytes())
        os.utime(target, (1_900_000_000, 1_900_000_000))  # other file times, other checkout
    assert build_archive(function, copy) == first, f"{function.name}.zip depends on file times or location"
    assert build_archive(function) == first, f"{function.name}.zip differs between two builds"


def test_entries_carry_fixed_metadata_and_are_sorted(package: Callable[[dict[str, str]], Path]) -> None:
    root = package(
        {
            "handlers/__init__.py": "",
            "handlers/chat.py": "from handlers import shared\n",
            "handlers/shared.py": "VALUE = 1\n",
        }
    )
    with zipfile.ZipFile(BytesIO(build_archive(fixture_function("chat"), root))) as opened:
        infos = opened.infolist()
    assert [info.filename for info in infos] == ["handlers/__init__.py", "handlers/chat.py", "handlers/shared.py"]
    for info in infos:
        assert info.date_time == archive.ZIP_EPOCH, f"{info.filename} carries a build-time timestamp"
        assert info.external_attr >> 16 == archive.FILE_MODE, f"{info.filename} has permissions {info.external_attr:o}"
        assert info.compress_type == zipfile.ZIP_DEFLATED, f"{info.filename} is not deflated"
        assert info.create_system == 3, f"{info.filename} does not record Unix as its system"


@pytest.mark.parametrize("function", HANDLERS_ONLY, ids=lambda function: function.name)
def test_real_archive_unpacks_to_the_sources_at_the_fixed_level(function: Function) -> None:
    data = build_archive(function)
    entries = zip_entries(data)
    for name, content in entries.items():
        assert content == (archive.SOURCE_ROOT / name).read_bytes(), f"{function.name}.zip: {name} differs from source"
    assert data == rezipped(data, archive.COMPRESS_LEVEL), f"{function.name}.zip is not deflated at the fixed level"


@pytest.mark.parametrize("function", HANDLERS_ONLY, ids=lambda function: function.name)
def test_content_hash_is_the_hash_of_the_entries_whatever_the_compression(function: Function) -> None:
    data = build_archive(function)
    expected = content_hash(function)
    assert hash_of_entries(zip_entries(data)) == expected, f"{function.name}: content_hash is not over the entries"
    other_bytes = rezipped(data, 1)
    assert other_bytes != data, "level 1 must give other bytes, or this test proves nothing"
    assert hash_of_entries(zip_entries(other_bytes)) == expected, (
        f"{function.name}: differently compressed bytes of the same files must keep the same content hash"
    )


def test_content_hash_follows_names_and_bytes_only(package: Callable[[dict[str, str]], Path]) -> None:
    files = {
        "handlers/__init__.py": "",
        "handlers/entry.py": "from handlers import shared\n",
        "handlers/shared.py": "A = 1\n",
    }
    root = package(files)
    entry = fixture_function("entry")
    before = content_hash(entry, root)
    for relative in files:
        os.utime(root / relative, (1_900_000_000, 1_900_000_000))
    assert content_hash(entry, root) == before, "content_hash depends on file times"
    (root / "handlers/shared.py").write_text("A = 2\n")
    assert content_hash(entry, root) != before, "content_hash missed a changed module"
    (root / "handlers/shared.py").write_text("A = 1\n")
    (root / "handlers/entry.py").write_text("from handlers import shared, extra\n")
    (root / "handlers/extra.py").write_text("")
    assert content_hash(entry, root) != before, "content_hash missed a new member"


def test_imports_are_followed_transitively_in_every_form(package: Callable[[dict[str, str]], Path]) -> None:
    root = package(
        {
            "handlers/__init__.py": "",
            "handlers/entry.py": "import handlers.absolute\nfrom . import relative\nfrom .attribute import NAME\n",
            "handlers/absolute.py": "from handlers.nested import deep\n",
            "handlers/relative.py": "def load():\n    from handlers import late  # imported inside a function\n",
            "handlers/attribute.py": "NAME = 1\n",
            "handlers/late.py": "",
            "handlers/nested/__init__.py": "",
            "handlers/nested/deep.py": "from .. import attribute\n",
            "handlers/unused.py": "",
            "handlers/__pycache__/entry.cpython-311.pyc": "compiled",
            "handlers/tests/test_entry.py": "from handlers import entry\n",
        }
    )
    assert archive_members(fixture_function("entry"), root) == [
        "handlers/__init__.py",
        "handlers/absolute.py",
        "handlers/attribute.py",
        "handlers/entry.py",
        "handlers/late.py",
        "handlers/nested/__init__.py",
        "handlers/nested/deep.py",
        "handlers/relative.py",
    ]


def test_package_init_imports_are_followed(package: Callable[[dict[str, str]], Path]) -> None:
    root = package(
        {
            "handlers/__init__.py": "from handlers import setup\n",
            "handlers/setup.py": "",
            "handlers/entry.py": "",
        }
    )
    assert "handlers/setup.py" in archive_members(fixture_function("entry"), root), (
        "a module imported by handlers/__init__.py runs in every function and must be zipped"
    )


def test_a_change_to_one_module_changes_only_the_archives_containing_it(
    package: Callable[[dict[str, str]], Path],
) -> None:
    root = package(
        {
            "handlers/__init__.py": "",
            "handlers/first.py": "from handlers import shared\n",
            "handlers/second.py": "from handlers import shared\n",
            "handlers/third.py": "VALUE = 3\n",
            "handlers/shared.py": "VALUE = 1\n",
        }
    )
    first, second, third = (fixture_function(module) for module in ("first", "second", "third"))
    before = {function.name: build_archive(function, root) for function in (first, second, third)}

    (root / "handlers/first.py").write_text("from handlers import shared\nCHANGED = True\n")
    after_first = {function.name: build_archive(function, root) for function in (first, second, third)}
    assert after_first["first"] != before["first"], "first.zip did not change when first.py did"
    assert after_first["second"] == before["second"], "second.zip changed though first.py is not in it"
    assert after_first["third"] == before["third"], "third.zip changed though first.py is not in it"

    (root / "handlers/shared.py").write_text("VALUE = 2\n")
    after_shared = {function.name: build_archive(function, root) for function in (first, second, third)}
    assert after_shared["first"] != after_first["first"], "first.zip did not change when shared.py did"
    assert after_shared["second"] != after_first["second"], "second.zip did not change when shared.py did"
    assert after_shared["third"] == after_first["third"], "third.zip changed though it does not import shared.py"


def test_a_missing_handler_module_is_a_clear_error(package: Callable[[dict[str, str]], Path]) -> None:
    root = package({"handlers/__init__.py": ""})
    with pytest.raises(ArchiveError, match=r"handlers\.absent\.handler .*absent\.py does not exist"):
        archive_members(fixture_function("absent"), root)


def test_importing_a_missing_handlers_module_names_the_importer(package: Callable[[dict[str, str]], Path]) -> None:
    root = package({"handlers/__init__.py": "", "handlers/entry.py": "import handlers.gone\n"})
    with pytest.raises(ArchiveError, match=r"handlers/entry\.py imports handlers\.gone"):
        archive_members(fixture_function("entry"), root)


def test_a_syntax_error_names_the_module(package: Callable[[dict[str, str]], Path]) -> None:
    root = package({"handlers/__init__.py": "", "handlers/entry.py": "def broken(:\n"})
    with pytest.raises(ArchiveError, match=r"handlers/entry\.py cannot be parsed"):
        archive_members(fixture_function("entry"), root)


def test_a_package_without_init_is_refused(package: Callable[[dict[str, str]], Path]) -> None:
    root = package({"handlers/entry.py": ""})
    with pytest.raises(ArchiveError, match=r"__init__\.py is missing"):
        archive_members(fixture_function("entry"), root)


def test_write_archive_stores_the_bytes_and_leaves_an_unchanged_file_alone(
    package: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    root = package({"handlers/__init__.py": "", "handlers/entry.py": "VALUE = 1\n"})
    function = fixture_function("entry")
    build = tmp_path / "build"
    path, data = write_archive(function, build, root)
    assert path == build / "entry.zip", f"archive written to {path}"
    assert path.read_bytes() == data == build_archive(function, root), "written bytes differ from build_archive"
    os.utime(path, (1_000_000_000, 1_000_000_000))
    write_archive(function, build, root)
    assert path.stat().st_mtime == 1_000_000_000, "an unchanged archive was rewritten"
    (root / "handlers/entry.py").write_text("VALUE = 2\n")
    _, changed = write_archive(function, build, root)
    assert path.read_bytes() == changed != data, "a changed archive was not rewritten"
    assert sorted(item.name for item in build.iterdir()) == ["entry.zip", "entry.zip.sha256"], "temporary files left"


def test_archive_module_imports_no_pulumi() -> None:
    script = "import sys, infra.archive; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pulumi'))"
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=archive.SOURCE_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]", f"infra.archive pulls in Pulumi: {completed.stdout.strip()}"


def test_a_spurious_ast_system_error_is_retried(
    package: Callable[[dict[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = package({"handlers/__init__.py": "", "handlers/only.py": "import handlers.other\n", "handlers/other.py": ""})
    real_parse = ast.parse
    failures = iter([True])

    def flaky_parse(source: bytes, filename: str) -> object:
        if next(failures, False):
            raise SystemError("AST constructor recursion depth mismatch (before=201, after=254)")
        return real_parse(source, filename=filename)

    monkeypatch.setattr(ast, "parse", flaky_parse)
    archive._imports.cache_clear()
    members = {str(member) for member in archive_members(fixture_function("only"), root)}
    assert "handlers/other.py" in members, f"a retried parse still follows imports: {members}"
