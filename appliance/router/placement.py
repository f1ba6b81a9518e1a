"""Where the router's model runs: a board vendor's plugin execution provider and one of its
devices, or onnxruntime's own CPU provider, and why.

onnxruntime loads execution providers as plugin libraries: a board vendor ships its NPU's
provider as a shared library (often inside a Python package), the appliance registers it, and
the library lists the devices it can drive (``OrtEpDevice``: the provider's name and vendor,
and a hardware device whose type is NPU, GPU or CPU). The board profile names the library and
the device types it wants, most wanted first. The choice among the listed devices is ours and
explicit, rather than onnxruntime's ``PREFER_NPU`` policy, so that the appliance can say which
device it took and, when it is not the first one wanted, why not: a profile that claims an NPU
while the CPU does the work is worse than no claim.

``choose`` is plain data in and out, so its tests need neither a library nor ONNX; only
``load_plugin`` and ``offers`` touch onnxruntime.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec
import onnxruntime as ort

from appliance.errors import ProviderUnavailable

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
DeviceType: TypeAlias = Literal["NPU", "GPU", "CPU"]
DEVICE_TYPES: tuple[DeviceType, ...] = ("NPU", "GPU", "CPU")


class Plugin(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin execution provider library: a file, or the Python package that ships one
    (its ``get_library_path()``, the convention onnxruntime's packaging guide asks of them).
    ``provider`` picks one of the library's providers where it registers several; ``options``
    go to that provider as they are."""

    path: str = ""
    package: str = ""
    provider: str = ""
    options: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def name(self) -> str:
        """How messages name it: the package, else the file."""
        return f"package {self.package}" if self.package else self.path


@dataclass(frozen=True, slots=True)
class Offer:
    """One device a provider can drive, as onnxruntime lists it."""

    provider: str
    device: str  # NPU, GPU or CPU (onnxruntime's OrtHardwareDeviceType)
    vendor: str  # the hardware's vendor ("Intel"); may be empty under emulation
    library: str = ""  # the plugin library it came from; "" for a provider built in
    handle: Any = field(default=None, compare=False, repr=False)  # the OrtEpDevice itself


@dataclass(frozen=True, slots=True)
class Choice:
    offer: Offer
    fallback: str = ""  # why not the first device wanted (or not the plugin's); "" if it is


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """Where the model runs, as the session was built: the provider and device that really
    run it, what the board wanted, and why not the first of that when it is not."""

    provider: str
    device: str
    vendor: str = ""
    wanted: list[str] = msgspec.field(default_factory=list)
    library: str = ""  # the plugin library whose provider runs the model; "" for the CPU's
    fallback: str = ""  # why it runs here and not where the board wants it first
    nodes: int = 0  # the model's nodes after onnxruntime's graph optimisation
    nodes_on_provider: int = 0  # how many of them ``provider`` runs; the CPU provider the rest

    def summary(self) -> str:
        """One line for the log and the ready line; the provider's name comes first, alone,
        so a reader of ``router=(\\S+)`` still gets it."""
        text = f"{self.provider} on {self.device}"
        if self.vendor:
            text += f" ({self.vendor})"
        if self.provider != CPU and 0 < self.nodes_on_provider < self.nodes:
            text += f", {self.nodes_on_provider} of {self.nodes} nodes (the rest on the CPU)"
        if self.fallback:
            text += f", a fallback: {self.fallback}"
        return text


def choose_device(plugin: Plugin | None, wanted: Sequence[str], *, strict: bool) -> Choice:
    """Register the board's plugin, if it names one, and choose among the devices then
    listed (``choose``)."""
    trouble = ""
    library = ""
    if plugin is not None:
        try:
            library = load_plugin(plugin)
        except ProviderUnavailable as err:
            trouble = str(err)
    every = offers()
    offered: list[Offer] = []
    if plugin is not None and library:
        offered, trouble = plugin_offers(plugin, library, every)
    return choose(wanted, offered, cpu_offer(every), trouble=trouble, strict=strict)


def choose(
    wanted: Sequence[str],
    offered: Sequence[Offer],
    cpu: Offer,
    *,
    trouble: str = "",
    strict: bool,
) -> Choice:
    """The first device type in ``wanted`` that the plugin's devices (``offered``) include;
    for "CPU", the plugin's CPU device, else onnxruntime's own CPU provider (``cpu``). None
    of them: the CPU provider, and the choice says why (``trouble``: why the board's plugin
    offers nothing, when it names one and it does not load or lists no device).

    A strict board refuses instead of falling back: when no wanted type is on offer, and when
    its plugin is unusable even where "CPU" is wanted (a library the profile names and the
    board cannot load is a broken board, not a choice)."""
    if not wanted:
        raise ProviderUnavailable("no device type named for the router; name at least one")
    if strict and trouble:
        raise ProviderUnavailable(f"strict mode: {trouble}")
    for i, kind in enumerate(wanted):
        found = [o for o in offered if o.device == kind]
        if found:
            return Choice(found[0], _why_not(wanted[:i], offered, trouble))
        if kind == "CPU":  # the plugin's CPU device is missing too, if it has a plugin
            missed = wanted[: i + 1] if offered or trouble else wanted[:i]
            return Choice(cpu, _why_not(missed, offered, trouble))
    why = _why_not(wanted, offered, trouble)
    if strict:
        raise ProviderUnavailable(
            f"strict mode: the router needs a device of type {' or '.join(wanted)} and there "
            f"is none: {why}"
        )
    return Choice(cpu, why)


def _why_not(skipped: Sequence[str], offered: Sequence[Offer], trouble: str) -> str:
    """Why the device types in ``skipped`` (those wanted before the chosen one) were not
    taken: the plugin's trouble, what it offers instead, or that there is no plugin."""
    if not skipped:
        return ""
    if trouble:
        return trouble
    if not offered:
        return "the board names no plugin execution provider"
    names = sorted({o.provider for o in offered})
    kinds = ", ".join(sorted({o.device for o in offered}))
    verb = "lists" if len(names) == 1 else "list"
    return f"{' and '.join(names)} {verb} no {' or '.join(skipped)} device here (only {kinds})"


def placement_of(choice: Choice, wanted: Sequence[str], session: Any) -> Placement:
    """The placement as onnxruntime built ``session`` (recorded with the session config entry
    ``session.record_ep_graph_assignment_info``): a plugin that took none of the model's nodes
    is said as what it is, the CPU provider running everything."""
    counts: dict[str, int] = {}
    for subgraph in session.get_provider_graph_assignment_info():
        counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    offer, fallback = choice.offer, choice.fallback
    if offer.provider != CPU and counts.get(offer.provider, 0) == 0:
        fallback = f"{offer.provider} took none of the model's nodes"
        offer = Offer(CPU, "CPU", offer.vendor if offer.device == "CPU" else "")
    return Placement(
        provider=offer.provider,
        device=offer.device,
        vendor=offer.vendor,
        wanted=list(wanted),
        library=offer.library,
        fallback=fallback,
        nodes=sum(counts.values()),
        nodes_on_provider=counts.get(offer.provider, 0),
    )


# onnxruntime keeps registered libraries for the process, and a second registration of one
# fails: several routers in one process (the tests, `qey route` beside nothing) share one.
_registered: set[str] = set()
_registering = threading.Lock()


def load_plugin(plugin: Plugin) -> str:
    """Register the plugin's library with onnxruntime (once per process) and return its path.
    Raises ``ProviderUnavailable`` saying why it cannot: no such package or file, or a file
    onnxruntime cannot load as a provider library."""
    path = _library_path(plugin)
    with _registering:
        if path in _registered:
            return path
        try:
            ort.register_execution_provider_library(f"qey:{path}", path)
        except Exception as err:  # onnxruntime raises its own Fail
            raise ProviderUnavailable(
                f"cannot load the provider library {path}: {_ort_message(err)}"
            ) from err
        _registered.add(path)
    return path


def _library_path(plugin: Plugin) -> str:
    if plugin.package:
        try:
            module = importlib.import_module(plugin.package)
        except ImportError as err:
            raise ProviderUnavailable(
                f"no Python package {plugin.package} to ship the provider library ({err})"
            ) from err
        get_path: Callable[[], str] | None = getattr(module, "get_library_path", None)
        if get_path is None:
            raise ProviderUnavailable(f"package {plugin.package} has no get_library_path()")
        try:
            raw = get_path()
        except Exception as err:  # the package's own FileNotFoundError and the like
            raise ProviderUnavailable(
                f"package {plugin.package} cannot say where its provider library is: {err}"
            ) from err
    elif plugin.path:
        raw = plugin.path
    else:
        raise ProviderUnavailable("the plugin names neither a path nor a package")
    path = Path(raw)
    if not path.is_file():
        raise ProviderUnavailable(f"no provider library at {path}")
    return str(path.resolve())


def _ort_message(err: Exception) -> str:
    """onnxruntime's message without its ``[ONNXRuntimeError] : 1 : FAIL :`` prefix."""
    text = str(err)
    return text.rsplit(" : ", 1)[-1] if text.startswith("[ONNXRuntimeError]") else text


def offers() -> list[Offer]:
    """Every device a registered provider can drive, built in (the CPU provider) or plugged in."""
    found: list[Offer] = []
    for d in ort.get_ep_devices():
        library = d.ep_metadata.get("library_path", "")
        found.append(
            Offer(
                provider=d.ep_name,
                device=d.device.type.name,
                vendor=d.device.vendor,
                library=str(Path(library).resolve()) if library else "",
                handle=d,
            )
        )
    return found


def plugin_offers(plugin: Plugin, library: str, every: Sequence[Offer]) -> tuple[list[Offer], str]:
    """The devices of ``library``'s providers (only ``plugin.provider``'s if it names one), and
    why there are none when there are none."""
    mine = [o for o in every if o.library == library]
    if plugin.provider:
        named = [o for o in mine if o.provider == plugin.provider]
        if not named:
            listed = ", ".join(sorted({o.provider for o in mine})) or "none"
            return [], f"{library} has no provider {plugin.provider} (it has: {listed})"
        mine = named
    if not mine:
        return [], f"{library} lists no device on this machine"
    return mine, ""


def cpu_offer(every: Sequence[Offer]) -> Offer:
    """onnxruntime's own CPU provider, with the vendor it reports for this CPU."""
    return next((o for o in every if o.provider == CPU), Offer(CPU, "CPU", ""))
