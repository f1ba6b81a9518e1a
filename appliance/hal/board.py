"""Board profiles: what hardware a board has and how to reach it, as data in hw/boards/.

One TOML file per board (``qey0`` the device, ``qemu`` the images, ``sim`` the host) so the
same code drives real and simulated hardware: only the profile differs. A profile is checked
completely at start, and a bad one fails with the file and the field named, because an
appliance that starts with half a board fails later, far from the cause.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from appliance.hal.errors import BadBoardProfile

BOARDS_DIR = Path(__file__).resolve().parents[2] / "hw" / "boards"
"""Where named profiles live in a source tree; the image installs them to the same layout."""

Pin = Annotated[int, msgspec.Meta(ge=0, le=27, description="BCM GPIO number")]
Baud = Annotated[int, msgspec.Meta(ge=1200, le=4_000_000)]
Fps = Annotated[float, msgspec.Meta(gt=0, le=60)]
DeviceType = Literal["NPU", "GPU", "CPU"]  # onnxruntime's OrtHardwareDeviceType
_SERIAL_URLS = ("socket://", "loop://", "rfc2217://", "spy://", "hwgrep://")


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Unknown keys are typos until proven otherwise: refuse them."""


class GpioConfig(_Strict, frozen=True):
    pin_factory: Literal["lgpio", "mock"]
    chip: Annotated[int, msgspec.Meta(ge=0)] = 0


class RgbPins(_Strict, frozen=True):
    red: Pin
    green: Pin
    blue: Pin


class LedPins(_Strict, frozen=True):
    """The three status LEDs: ``power`` (LED), ``activity`` (PWMLED), ``status`` (RGBLED)."""

    power: Pin
    activity: Pin
    status: RgbPins
    active_high: bool = True

    @property
    def all(self) -> list[int]:
        return [self.power, self.activity, self.status.red, self.status.green, self.status.blue]


class DisplayConfig(_Strict, frozen=True):
    """The Neur Lines display's serial link.

    ``port`` is a device path (``/dev/ttyUSB0``) or a pyserial URL (``socket://``,
    ``loop://``); ``match`` is the udev properties of its adapter, which the hot-plug monitor
    uses to notice it coming back (and, without ``port``, to find its device node).
    """

    port: str = ""
    baud: Baud = 115200
    fps: Fps = 10.0
    match: dict[str, str] = msgspec.field(default_factory=dict)


class PluginConfig(_Strict, frozen=True):
    """The board's plugin execution provider library (the vendor's provider for its NPU):
    ``path``, the file, or ``package``, the Python package that ships it; one of the two.
    ``provider`` picks one of the library's providers where it has several; ``options`` go
    to that provider as they are."""

    path: str = ""
    package: str = ""
    provider: str = ""
    options: dict[str, str] = msgspec.field(default_factory=dict)


class RouterConfig(_Strict, frozen=True):
    """Where the router's model runs: the first of ``devices`` (most wanted first) that the
    plugin lists, or that the CPU provider is ("CPU"). None of them: onnxruntime's CPU
    provider, said as a fallback with its reason, or with ``strict`` a refused start."""

    devices: list[DeviceType]
    plugin: PluginConfig | None = None
    strict: bool = False


class WebConfig(_Strict, frozen=True):
    listen: list[str]


class FleetBrokerConfig(_Strict, frozen=True):
    """Where the fleet-server role's broker (nats-server) may listen on this board: for the
    devices and for the other brokers of a cluster. Empty: the board never runs a broker,
    whatever config.toml asks."""

    listen: list[str] = msgspec.field(default_factory=list)


class BoardProfile(_Strict, frozen=True, kw_only=True):
    name: str
    description: str = ""
    gpio: GpioConfig
    leds: LedPins
    display: DisplayConfig
    router: RouterConfig
    web: WebConfig
    fleet_broker: FleetBrokerConfig = FleetBrokerConfig()
    source: str = ""  # the file it came from, for messages (not read from the file)

    @property
    def simulated(self) -> bool:
        """True where GPIO is gpiozero's MockFactory: the same code path, no pins."""
        return self.gpio.pin_factory == "mock"


def load_board(name_or_path: str | Path, boards_dir: Path = BOARDS_DIR) -> BoardProfile:
    """The profile named (``sim``) or at a path (``./my-board.toml``), checked in full."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = boards_dir / f"{name_or_path}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        known = ", ".join(sorted(p.stem for p in boards_dir.glob("*.toml"))) or "none"
        raise BadBoardProfile(
            f"{path}: cannot read board profile ({err.strerror}); known boards: {known}"
        ) from None
    return parse_board(text, str(path))


def parse_board(text: str, source: str) -> BoardProfile:
    """Decode and check a profile's text; every error names ``source`` and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BadBoardProfile(f"{source}: not valid TOML: {err}") from None
    if "source" in data:
        raise BadBoardProfile(f"{source}: unknown field `source`")
    router = data.get("router")
    if isinstance(router, dict) and "execution_providers" in router:  # the old [router]
        raise BadBoardProfile(
            f"{source}: router.execution_providers: replaced by router.devices and "
            "router.plugin (hw/README.md)"
        )
    data["source"] = source
    try:
        board = msgspec.convert(data, BoardProfile)
    except msgspec.ValidationError as err:
        raise BadBoardProfile(f"{source}: {_field_message(err)}") from None
    _check(board)
    return board


def _field_message(err: msgspec.ValidationError) -> str:
    """msgspec says ``... - at `$.leds.power```; say ``leds.power: ...`` instead."""
    text = str(err)
    message, sep, where = text.rpartition(" - at `$.")
    if not sep:
        return text
    return f"{where.rstrip('`')}: {message}"


def _check(board: BoardProfile) -> None:
    """What a schema cannot say: pins used twice, a display with no way to find it."""
    pins = board.leds.all
    if len(set(pins)) != len(pins):
        twice = sorted({p for p in pins if pins.count(p) > 1})
        raise BadBoardProfile(f"{board.source}: leds: GPIO {twice} used by more than one LED")
    display = board.display
    if not display.port and not display.match:
        raise BadBoardProfile(f"{board.source}: display.port: give a port, a match, or both")
    if "://" in display.port and not display.port.startswith(_SERIAL_URLS):
        raise BadBoardProfile(
            f"{board.source}: display.port: {display.port!r} is not a pyserial URL "
            f"({', '.join(_SERIAL_URLS)})"
        )
    _check_router(board.router, board.source)
    for field, addresses in (
        ("web", board.web.listen),
        ("fleet_broker", board.fleet_broker.listen),
    ):
        for i, address in enumerate(addresses):
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise BadBoardProfile(
                    f"{board.source}: {field}.listen[{i}]: {address!r} is not HOST:PORT"
                )


def _check_router(router: RouterConfig, source: str) -> None:
    devices = router.devices
    if not devices:
        raise BadBoardProfile(f"{source}: router.devices: name at least one device type")
    if len(set(devices)) != len(devices):
        raise BadBoardProfile(f"{source}: router.devices: {devices} names a type twice")
    plugin = router.plugin
    if plugin is None:
        return
    if bool(plugin.path) == bool(plugin.package):
        raise BadBoardProfile(f"{source}: router.plugin: give either a path or a package")
    if plugin.path and not plugin.path.startswith("/"):
        raise BadBoardProfile(
            f"{source}: router.plugin.path: {plugin.path!r} is not an absolute path"
        )
