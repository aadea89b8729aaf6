"""The authorizer's zip ships its libraries: wheels unpacked deterministically, fetched pinned and hash-checked by pip.

Small wheels built here test the archive builder; the real pinned PyJWT and cryptography wheels (downloaded once into
build/wheels, as the program does) prove the deployed zip holds both, compiled for each architecture and Python 3.13
(importing them needs a 3.13 interpreter of that architecture, which the test machines lack).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from app import definition
from infra import wheels
from infra.archive import SOURCE_ROOT, ArchiveError, archive_entries, build_archive, content_hash, write_archive
from tests.infra.mocks import ProgramError, run_program

AUTHORIZER = definition.AUTHORIZER


def make_wheel(directory: Path, name: str, files: dict[str, str], version: str = "1.0") -> Path:
    """A minimal wheel: the given files plus a dist-info, as pip would download it."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in {**files, f"{name}-{version}.dist-info/METADATA": f"Name: {name}\n"}.items():
            wheel.writestr(member, text)
        wheel.writestr(f"{name}/", "")
        wheel.writestr(f"{name}/__pycache__/stale.pyc", "x")
    return path


@pytest.fixture
def fake_wheels(tmp_path: Path) -> Path:
    """Wheels providing every package the authorizer lists, each a one-line module."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    for package in AUTHORIZER.libraries:
        make_wheel(directory, package.lstrip("_") or package, {f"{package}/__init__.py": f"NAME = {package!r}\n"})
    return directory


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def test_the_zip_holds_the_handlers_and_the_wheels_files_sorted_without_caches(fake_wheels: Path) -> None:
    members = names(build_archive(AUTHORIZER, wheels=fake_wheels))
    assert members == sorted(members), "entries must be sorted for a deterministic zip"
    assert "handlers/authorizer.py" in members and "jwt/__init__.py" in members, f"zip holds {members}"
    assert not [name for name in members if "__pycache__" in name or name.endswith("/")], "caches or directories"
    assert any(name.endswith(".dist-info/METADATA") for name in members), "dist-info ships, as pip installs it"


def test_the_zip_is_deterministic_and_its_hash_follows_the_wheels(fake_wheels: Path, tmp_path: Path) -> None:
    first = build_archive(AUTHORIZER, wheels=fake_wheels)
    assert build_archive(AUTHORIZER, wheels=fake_wheels) == first, "two builds differ"
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}, "timestamps leak in"
    before = content_hash(AUTHORIZER, wheels=fake_wheels)
    make_wheel(fake_wheels, "jwt", {"jwt/__init__.py": "NAME = 'changed'\n"})
    assert content_hash(AUTHORIZER, wheels=fake_wheels) != before, "a changed wheel must change the code hash"


def test_write_archive_reuses_an_unchanged_zip_and_rebuilds_a_changed_one(fake_wheels: Path, tmp_path: Path) -> None:
    path, data = write_archive(AUTHORIZER, tmp_path / "build", wheels=fake_wheels)
    path.write_bytes(b"tampered")
    path.with_name(f"{path.name}.sha256").write_text("stale", encoding="ascii")
    again, rebuilt = write_archive(AUTHORIZER, tmp_path / "build", wheels=fake_wheels)
    assert rebuilt == data and again.read_bytes() == data, "a stale record must rebuild the zip"
    path.write_bytes(b"kept")  # the record still matches, so the file is trusted and not rebuilt
    _, reused = write_archive(AUTHORIZER, tmp_path / "build", wheels=fake_wheels)
    assert reused == b"kept", "a zip whose record matches the content hash is reused unbuilt"


def test_each_wheel_set_gets_its_own_zip_so_one_build_never_replaces_another(tmp_path: Path) -> None:
    # Two stacks (or two test processes) building arm64 and x86_64 side by side must not read each other's zip.
    built: dict[str, tuple[Path, bytes]] = {}
    for wheel_set in ("3.13-arm64", "3.13-x86_64"):
        directory = tmp_path / wheel_set
        directory.mkdir()
        for package in AUTHORIZER.libraries:
            module = {f"{package}/__init__.py": f"NAME = {package!r}; BUILT_FOR = {wheel_set!r}\n"}
            make_wheel(directory, package.lstrip("_") or package, module)
        built[wheel_set] = write_archive(AUTHORIZER, tmp_path / "build", wheels=directory)
    (arm_path, arm), (x86_path, x86) = built["3.13-arm64"], built["3.13-x86_64"]
    assert (arm_path.name, x86_path.name) == ("authorizer-3.13-arm64.zip", "authorizer-3.13-x86_64.zip"), built
    assert arm != x86 and arm_path.read_bytes() == arm and x86_path.read_bytes() == x86, "one build replaced another"


def test_libraries_without_wheels_or_wheels_without_libraries_are_refused(fake_wheels: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="give its wheels"):
        build_archive(AUTHORIZER)
    with pytest.raises(ArchiveError, match="ships no libraries"):
        build_archive(definition.CONNECT, wheels=fake_wheels)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArchiveError, match="none of its wheels provide"):
        build_archive(AUTHORIZER, wheels=empty)


def test_a_wheel_may_not_overwrite_the_handlers(fake_wheels: Path) -> None:
    make_wheel(fake_wheels, "evil", {"handlers/authorizer.py": "def handler(event, context): return 'Allow'\n"})
    with pytest.raises(ArchiveError, match="which the zip already holds"):
        archive_entries(AUTHORIZER, wheels=fake_wheels)


def test_download_is_pip_with_hashes_for_the_architecture_and_python(tmp_path: Path) -> None:
    commands: list[Sequence[str]] = []

    def fake_pip(command: Sequence[str]) -> None:
        commands.append(command)
        target = Path(command[command.index("--dest") + 1])
        for name, version in wheels.pinned(wheels.lock_file(AUTHORIZER)):
            make_wheel(target, name, {f"{name}/__init__.py": ""}, version)

    directory = wheels.wheel_directory(AUTHORIZER, "python3.13", "x86_64", cache=tmp_path, run=fake_pip)
    [command] = commands
    assert command[1:4] == ["-m", "pip", "download"], command
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:"):
        assert flag in command, f"pip download without {flag}: {command}"
    assert command[command.index("--python-version") + 1] == "3.13", command
    assert command[command.index("--implementation") + 1] == "cp", command
    platforms = [command[index + 1] for index, part in enumerate(command) if part == "--platform"]
    assert platforms == ["manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64"], platforms
    assert directory == tmp_path / "authorizer" / "3.13-x86_64", directory
    wheels.wheel_directory(AUTHORIZER, "python3.13", "x86_64", cache=tmp_path, run=fake_pip)
    assert len(commands) == 1, "a complete cache is not downloaded again"
    wheels.wheel_directory(AUTHORIZER, "python3.13", "arm64", cache=tmp_path, run=fake_pip)
    assert "manylinux2014_aarch64" in commands[-1], "arm64 fetches aarch64 wheels"


def test_a_download_missing_a_pin_is_refused_and_leaves_no_cache(tmp_path: Path) -> None:
    def partial_pip(command: Sequence[str]) -> None:
        make_wheel(Path(command[command.index("--dest") + 1]), "pyjwt", {"jwt/__init__.py": ""}, "2.15.1")

    with pytest.raises(wheels.WheelError, match="pip fetched"):
        wheels.wheel_directory(AUTHORIZER, "python3.13", "arm64", cache=tmp_path, run=partial_pip)
    assert not (tmp_path / "authorizer" / "3.13-arm64").exists(), "a failed download must leave nothing behind"


def test_every_pin_carries_a_hash_per_architecture_where_wheels_differ() -> None:
    lock = wheels.lock_file(AUTHORIZER).read_text(encoding="utf-8")
    for line in lock.splitlines():
        if line.startswith(("cryptography==", "cffi==")):
            assert line.count("--hash=sha256:") == 2, f"a compiled wheel needs an arm64 and an x86_64 hash: {line}"
    assert wheels.pinned(wheels.lock_file(AUTHORIZER))[0] == ("pyjwt", "2.15.1"), "PyJWT is pinned first"


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_the_real_zip_ships_pinned_pyjwt_and_cryptography_for_the_architecture(
    architecture: str, tmp_path: Path
) -> None:
    """Downloads the pinned wheels once (CI reaches PyPI; build/wheels caches them), then opens the real zip."""
    try:
        directory = wheels.wheel_directory(AUTHORIZER, "python3.13", architecture)
    except wheels.WheelError as error:
        if "CI" in os.environ:
            raise
        pytest.skip(f"the pinned wheels cannot be downloaded here: {error}")
    members = names(build_archive(AUTHORIZER, wheels=directory))
    machine = wheels.MACHINES[architecture]
    assert "jwt/api_jwt.py" in members, "PyJWT missing from the zip"
    rust = [name for name in members if name.startswith("cryptography/hazmat/bindings/_rust")]
    assert rust, "cryptography's compiled bindings are missing"
    backend = [name for name in members if name.startswith("_cffi_backend.cpython-313-")]
    assert backend and all(machine in name for name in backend), f"cffi is not built for {machine}: {backend}"


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_the_program_deploys_the_authorizer_with_the_libraries_of_its_architecture(architecture: str) -> None:
    config = {"auth": "jwt", "jwtIssuer": "https://id.example.com/", "jwtAudience": "chat"}
    try:
        wheels.wheel_directory(AUTHORIZER, "python3.13", architecture)
    except wheels.WheelError as error:
        if "CI" in os.environ:
            raise
        pytest.skip(f"the pinned wheels cannot be downloaded here: {error}")
    run = run_program("dev", {**config, "lambdaArchitecture": architecture})
    function = run.one("aws:lambda/function:Function", "authorizer-function")
    assert function.inputs["architectures"] == [architecture], f"{function} runs on {function.inputs['architectures']}"
    with zipfile.ZipFile(SOURCE_ROOT / function.inputs["code"].path) as deployed:
        members = deployed.namelist()
    machine = wheels.MACHINES[architecture]
    assert "jwt/__init__.py" in members and "cryptography/__init__.py" in members, f"{function}: libraries missing"
    backend = [name for name in members if name.startswith("_cffi_backend.")]
    assert backend and all(machine in name for name in backend), f"{function} ships {backend} for {architecture}"


def test_a_runtime_the_lock_does_not_cover_stops_the_program_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        wheels.WheelError, match=re.escape("pins wheels for Python 3.13, but the stack runs python3.12")
    ):
        wheels.wheel_directory(AUTHORIZER, "python3.12", "arm64", cache=tmp_path, run=lambda command: None)
    config = {"auth": "jwt", "jwtSecret": "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc=", "lambdaRuntime": "python3.12"}
    with pytest.raises(ProgramError, match=re.escape("set lambdaRuntime to python3.13")):
        run_program("dev", config)
