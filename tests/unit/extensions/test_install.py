"""What ``qey extension install`` refuses before anything is written, and what it installs
(with the PyPA's ``installer`` library: the image has no pip)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from appliance.extensions.install import (
    ExtensionRefused,
    install,
    installed,
    remove,
    unmet_requirements,
)
from appliance.extensions.loader import site_dir

pytestmark = pytest.mark.unit


def make_wheel(
    tmp_path: Path,
    *,
    package: str = "qey_probe",
    requires: tuple[str, ...] = (),
    entry_points: str = "[qey.agents]\nprobe = qey_probe:Probe\n",
) -> Path:
    wheel = tmp_path / "qey_probe-1.0-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: qey-probe\nVersion: 1.0\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr("qey_probe-1.0.dist-info/METADATA", meta)
        archive.writestr(
            "qey_probe-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr("qey_probe-1.0.dist-info/entry_points.txt", entry_points)
        archive.writestr("qey_probe-1.0.dist-info/RECORD", "")
    return wheel


def test_a_wheel_shipping_an_appliance_package_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, package="appliance")
    with pytest.raises(ExtensionRefused, match="top-level appliance package"):
        install(wheel, tmp_path / "data")
    assert not site_dir(tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("requirement", "said"),
    [
        ("surely-not-installed-pkg>=1", "surely-not-installed-pkg is not in the appliance's"),
        ("msgspec<0.1", "the appliance has msgspec 0.22.0"),
    ],
)
def test_a_requirement_the_appliance_does_not_meet_is_refused_by_name(
    tmp_path: Path, requirement: str, said: str
) -> None:
    wheel = make_wheel(tmp_path, requires=(requirement, "cryptography>=1"))
    with pytest.raises(ExtensionRefused) as err:
        install(wheel, tmp_path / "data")
    assert said in str(err.value)
    assert "cryptography" not in str(err.value)  # what is met is not listed


def test_requirements_for_other_platforms_and_extras_are_skipped() -> None:
    import sys

    assert (
        unmet_requirements(
            ('nothing-such; sys_platform == "win32"', 'nothing-such; extra == "docs"'), sys.path
        )
        == []
    )


def test_a_wheel_without_agent_types_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, entry_points="[console_scripts]\nx = qey_probe:main\n")
    with pytest.raises(ExtensionRefused, match=r'project\.entry-points\."qey\.agents"'):
        install(wheel, tmp_path / "data")


def test_install_list_and_remove(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = install(make_wheel(tmp_path), data)
    assert (info.name, info.agent_entry_points) == ("qey-probe", ("probe",))
    assert (site_dir(data) / "qey_probe" / "__init__.py").is_file()
    assert (site_dir(data) / "qey_probe-1.0.dist-info" / "INSTALLER").read_text() == "qey\n"
    assert [(i.name, i.version) for i in installed(data)] == [("qey-probe", "1.0")]
    assert remove("QEY_Probe", data) == "qey-probe"
    assert installed(data) == []
    assert not (site_dir(data) / "qey_probe").exists()
    with pytest.raises(ExtensionRefused, match="no extension 'qey-probe' is installed"):
        remove("qey-probe", data)
