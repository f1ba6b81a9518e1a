"""Board profiles: the shipped ones load, and a bad one fails naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.hal.board import BOARDS_DIR, load_board, parse_board
from appliance.hal.errors import BadBoardProfile

pytestmark = pytest.mark.unit

GOOD = """
name = "t"
[gpio]
pin_factory = "mock"
[leds]
power = 5
activity = 6
status = { red = 16, green = 20, blue = 21 }
[display]
port = "loop://"
[router]
devices = ["CPU"]
[web]
listen = ["127.0.0.1:8080"]
"""


@pytest.mark.parametrize("name", ["qey0", "qemu", "sim"])
def test_every_shipped_profile_loads(name: str) -> None:
    board = load_board(name)
    assert board.name == name and board.source == str(BOARDS_DIR / f"{name}.toml")


def test_only_the_device_drives_real_pins() -> None:
    assert [load_board(n).simulated for n in ("qey0", "qemu", "sim")] == [False, True, True]


def test_a_profile_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    assert load_board(path).display.port == "loop://"


def test_an_unknown_board_names_the_file_and_the_known_ones() -> None:
    with pytest.raises(BadBoardProfile, match=r"nope\.toml: .*known boards: qemu, qey0, sim"):
        load_board("nope")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("power = 5", 'power = "five"', r"leds\.power: Expected `int`, got `str`"),
        ("power = 5", "power = 99", r"leds\.power: Expected `int` <= 27"),
        ("power = 5\n", "", r"leds: Object missing required field `power`"),
        ('pin_factory = "mock"', 'pin_factory = "rpigpio"', r"gpio\.pin_factory: Invalid"),
        ("[web]", "[web]\nport = 1", r"web: Object contains unknown field `port`"),
        ('port = "loop://"', 'port = "http://x"', r"display\.port: 'http://x' is not a pyserial"),
        ('port = "loop://"', "", r"display\.port: give a port, a match, or both"),
        ("power = 5", "power = 6", r"leds: GPIO \[6\] used by more than one LED"),
        ('"127.0.0.1:8080"', '"127.0.0.1"', r"web\.listen\[0\]: '127\.0\.0\.1' is not HOST:PORT"),
        ('devices = ["CPU"]', "devices = []", r"router\.devices: name at least one device"),
        (
            'devices = ["CPU"]',
            'devices = ["TPU"]',
            r"router\.devices\[0\]: Invalid enum value 'TPU'",
        ),
        ('["CPU"]', '["NPU", "CPU", "NPU"]', r"router\.devices: .* names a type twice"),
        ('["CPU"]', '["NPU"]\nplugin = {}', r"router\.plugin: give either a path or a package"),
        (
            '["CPU"]',
            '["NPU"]\nplugin = { path = "/x.so", package = "x" }',
            r"router\.plugin: give either a path or a package",
        ),
        ('["CPU"]', '["NPU"]\nplugin = { path = "x.so" }', r"router\.plugin\.path: 'x\.so' is not"),
        ('["CPU"]', '["NPU"]\nplugin = { package = "x", lib = 1 }', r"router\.plugin: .*`lib`"),
        (
            'devices = ["CPU"]',
            'execution_providers = ["CPUExecutionProvider"]',
            r"router\.execution_providers: replaced by router\.devices and router\.plugin",
        ),
        ("[gpio]", "[gpio", r"not valid TOML"),
    ],
)
def test_a_bad_profile_fails_naming_file_and_field(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(BadBoardProfile, match=r"^board\.toml: " + message):
        parse_board(GOOD.replace(old, new, 1), "board.toml")


def test_a_profile_missing_a_section_names_it() -> None:
    text = GOOD.split("[router]")[0]
    with pytest.raises(BadBoardProfile, match=r"board\.toml: .*required field `router`"):
        parse_board(text, "board.toml")


def test_the_device_names_no_xnnpack_as_its_npu_but_its_plugin_and_the_npu() -> None:
    router = load_board("qey0").router
    assert router.devices == ["NPU"] and router.plugin is not None
    assert router.plugin.path.startswith("/") and not router.strict
    assert "Xnnpack" not in (BOARDS_DIR / "qey0.toml").read_text()


def test_a_plugin_names_its_library_and_options() -> None:
    text = GOOD.replace(
        'devices = ["CPU"]',
        'devices = ["NPU", "GPU", "CPU"]\nstrict = true\n'
        '[router.plugin]\npackage = "onnxruntime_ep_openvino"\n'
        'provider = "OpenVINOExecutionProvider"\noptions = { num_of_threads = "1" }',
    )
    router = parse_board(text, "board.toml").router
    assert router.devices == ["NPU", "GPU", "CPU"] and router.strict
    assert router.plugin is not None
    assert (router.plugin.package, router.plugin.path) == ("onnxruntime_ep_openvino", "")
    assert router.plugin.options == {"num_of_threads": "1"}
