"""Installing, listing and removing extension wheels in the data directory's site.

The device's root is read-only and has no network, so a wheel goes into
``$QEY_DATA_DIR/extensions/site`` from the file alone, by ``installer`` (the PyPA's wheel
installer: a library, so the image needs no pip), its console scripts and data beside the
site. Its declared requirements must already be met by the appliance's own environment: an
extension may use what the appliance ships, never replace it, and nothing is downloaded. A
wheel with a top-level ``appliance`` package is refused outright.
"""

from __future__ import annotations

import email.parser
import shutil
import sys
import zipfile
from dataclasses import dataclass
from importlib.metadata import Distribution
from pathlib import Path

from installer import install as install_wheel
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from appliance.errors import ApplianceError
from appliance.extensions.loader import GROUP, site_dir

RESERVED_TOP_LEVEL = frozenset({"appliance"})


class ExtensionRefused(ApplianceError, ValueError):
    """A wheel that cannot be installed as an extension, or a name that is not installed."""


@dataclass(frozen=True, slots=True)
class WheelInfo:
    name: str
    version: str
    requires: tuple[str, ...]
    top_level: frozenset[str]
    agent_entry_points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Installed:
    name: str
    version: str
    agent_entry_points: tuple[str, ...]


def read_wheel(wheel: Path) -> WheelInfo:
    """The wheel's name, version, requirements, top-level names and ``qey.agents`` entry
    points, read from the archive without installing it."""
    if wheel.suffix != ".whl" or not wheel.is_file():
        raise ExtensionRefused(f"{wheel}: not a wheel file (build one with: pip wheel --no-deps .)")
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            info = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(info) != 1:
                raise ExtensionRefused(f"{wheel.name}: no single .dist-info/METADATA in it")
            dist_info = info[0].split("/")[0]
            metadata = email.parser.BytesParser().parsebytes(archive.read(info[0]))
            eps = _read_optional(archive, f"{dist_info}/entry_points.txt")
    except zipfile.BadZipFile as err:
        raise ExtensionRefused(f"{wheel.name}: not a readable wheel ({err})") from err
    top = {n.split("/")[0].removesuffix(".py") for n in names}
    top -= {dist_info, dist_info.replace(".dist-info", ".data")}
    return WheelInfo(
        name=str(metadata["Name"]),
        version=str(metadata["Version"]),
        requires=tuple(str(r) for r in metadata.get_all("Requires-Dist") or ()),
        top_level=frozenset(top),
        agent_entry_points=_agent_entry_points(eps),
    )


def _read_optional(archive: zipfile.ZipFile, name: str) -> str:
    try:
        return archive.read(name).decode()
    except KeyError:
        return ""


def _agent_entry_points(text: str) -> tuple[str, ...]:
    found: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == GROUP and "=" in line and not line.startswith(("#", ";")):
            found.append(line.split("=", 1)[0].strip())
    return tuple(found)


def unmet_requirements(requires: tuple[str, ...], paths: list[str]) -> list[str]:
    """Each requirement the environment on ``paths`` does not meet, said for a person; a
    requirement whose marker does not apply here (another platform, an extra) is skipped."""
    problems: list[str] = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement as err:
            problems.append(f"{text!r} is not a valid requirement ({err})")
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = _installed(req.name, paths)
        if dist is None:
            problems.append(f"{text}: {req.name} is not in the appliance's environment")
        elif req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{text}: the appliance has {req.name} {dist.version}")
    return problems


def _installed(name: str, paths: list[str]) -> Distribution | None:
    want = canonicalize_name(name)
    for dist in Distribution.discover(path=paths):
        if canonicalize_name(dist.metadata["Name"] or "") == want:
            return dist
    return None


def appliance_paths(data_dir: Path) -> list[str]:
    """``sys.path`` without the extensions' own site: what the appliance itself ships."""
    site = str(site_dir(data_dir))
    return [p for p in sys.path if p != site]


def install(wheel: Path, data_dir: Path) -> WheelInfo:
    """Check the wheel, then install it into the site (replacing an earlier version)."""
    info = read_wheel(wheel)
    if reserved := info.top_level & RESERVED_TOP_LEVEL:
        raise ExtensionRefused(
            f"{wheel.name} ships a top-level {', '.join(sorted(reserved))!s} package, which is "
            "the appliance's own; put the extension's code in a package of its own name"
        )
    if not info.agent_entry_points:
        raise ExtensionRefused(
            f"{wheel.name} declares no agent types: add to its pyproject.toml\n"
            f'  [project.entry-points."{GROUP}"]\n  my_type = "my_package.module:MyAgent"'
        )
    problems = unmet_requirements(info.requires, appliance_paths(data_dir))
    if problems:
        raise ExtensionRefused(
            f"{info.name} {info.version} needs what the appliance does not have (extensions "
            "install without their dependencies, so the appliance's must serve):\n  "
            + "\n  ".join(problems)
        )
    site = site_dir(data_dir)
    site.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _find(info.name, site) is not None:
        remove(info.name, data_dir)
    folder = site.parent
    destination = SchemeDictionaryDestination(
        {
            "purelib": str(site),
            "platlib": str(site),
            "scripts": str(folder / "bin"),
            "data": str(folder / "data"),
            "headers": str(folder / "include" / info.name),
        },
        interpreter=sys.executable,
        script_kind="posix",
        bytecode_optimization_levels=(0,),  # the root's pyc are there too: a quick first load
    )
    try:
        with WheelFile.open(wheel) as source:
            install_wheel(source, destination, additional_metadata={"INSTALLER": b"qey\n"})
    except Exception as err:  # installer raises ValueError, InvalidWheelSource, OSError, ...
        raise ExtensionRefused(f"could not install {wheel.name}: {err}") from err
    return info


def installed(data_dir: Path) -> list[Installed]:
    """The extensions in the site, by name."""
    site = site_dir(data_dir)
    if not site.is_dir():
        return []
    found = [
        Installed(
            name=dist.metadata["Name"] or "?",
            version=dist.version,
            agent_entry_points=tuple(ep.name for ep in dist.entry_points if ep.group == GROUP),
        )
        for dist in Distribution.discover(path=[str(site)])
    ]
    return sorted(found, key=lambda i: canonicalize_name(i.name))


def _find(name: str, site: Path) -> Distribution | None:
    return _installed(name, [str(site)]) if site.is_dir() else None


def remove(name: str, data_dir: Path) -> str:
    """Delete an extension's files (as its RECORD lists them, none outside the site) and
    its metadata; returns the name as installed."""
    site = site_dir(data_dir)
    dist = _find(name, site)
    if dist is None:
        names = ", ".join(i.name for i in installed(data_dir)) or "none"
        raise ExtensionRefused(f"no extension {name!r} is installed (installed: {names})")
    removed = dist.metadata["Name"] or name  # read before its metadata goes
    root = site.resolve()
    parents: set[Path] = set()
    for record in dist.files or ():
        path = (site / record).resolve()
        if root not in path.parents:
            continue  # a RECORD line pointing outside the site is never followed
        path.unlink(missing_ok=True)
        parents.add(path.parent)
    meta = getattr(dist, "_path", None)  # the .dist-info directory itself
    if isinstance(meta, Path) and meta.is_dir():
        shutil.rmtree(meta)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        _prune(folder, root)
    return removed


def _prune(folder: Path, root: Path) -> None:
    """Remove folders left empty (a package's __pycache__ included), up to the site."""
    while folder != root and root in folder.parents and folder.is_dir():
        cache = folder / "__pycache__"
        if cache.is_dir() and all(p.suffix == ".pyc" for p in cache.iterdir()):
            shutil.rmtree(cache)
        if any(folder.iterdir()):
            return
        folder.rmdir()
        folder = folder.parent
