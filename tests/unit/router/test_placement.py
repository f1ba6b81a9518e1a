"""The router's device choice as data: which listed device the board's order picks, what a
fallback says, and when a strict board refuses. No library and no model here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from appliance.errors import ProviderUnavailable
from appliance.router.placement import CPU, Choice, Offer, Placement, choose, placement_of

pytestmark = pytest.mark.unit

CPU_PROVIDER = Offer(CPU, "CPU", "Intel")
NPU = Offer("VendorNpuExecutionProvider", "NPU", "Vendor", "/usr/lib/libnpu.so")
GPU = Offer("VendorNpuExecutionProvider", "GPU", "Vendor", "/usr/lib/libnpu.so")
PLUGIN_CPU = Offer("VendorNpuExecutionProvider", "CPU", "Intel", "/usr/lib/libnpu.so")


@pytest.mark.parametrize(
    ("wanted", "offered", "chosen"),
    [
        (["NPU", "GPU", "CPU"], [GPU, NPU, PLUGIN_CPU], NPU),  # the board's order, not the list's
        (["GPU", "NPU"], [NPU, GPU], GPU),
        (["NPU", "GPU", "CPU"], [PLUGIN_CPU], PLUGIN_CPU),
        (["CPU"], [PLUGIN_CPU, NPU], PLUGIN_CPU),  # the plugin's CPU before the CPU provider
        (["CPU"], [], CPU_PROVIDER),
    ],
)
def test_the_first_wanted_type_on_offer_is_chosen(
    wanted: list[str], offered: list[Offer], chosen: Offer
) -> None:
    assert choose(wanted, offered, CPU_PROVIDER, strict=False).offer == chosen


def test_the_first_wanted_type_is_no_fallback() -> None:
    assert choose(["NPU", "CPU"], [NPU], CPU_PROVIDER, strict=True) == Choice(NPU, "")
    assert choose(["CPU"], [], CPU_PROVIDER, strict=True) == Choice(CPU_PROVIDER, "")


def test_a_later_type_says_why_not_the_first() -> None:
    choice = choose(["NPU", "GPU", "CPU"], [PLUGIN_CPU], CPU_PROVIDER, strict=False)
    assert choice.fallback == (
        "VendorNpuExecutionProvider lists no NPU or GPU device here (only CPU)"
    )


def test_no_wanted_device_falls_back_to_the_cpu_provider_saying_why() -> None:
    choice = choose(["NPU"], [PLUGIN_CPU, GPU], CPU_PROVIDER, strict=False)
    assert choice.offer == CPU_PROVIDER
    assert choice.fallback == "VendorNpuExecutionProvider lists no NPU device here (only CPU, GPU)"


@pytest.mark.parametrize(
    "trouble",
    [
        "no provider library at /usr/lib/libnpu.so",
        "cannot load the provider library /tmp/x.so: invalid ELF header",
        "/usr/lib/libnpu.so lists no device on this machine",
    ],
)
def test_a_plugin_in_trouble_falls_back_with_its_trouble_as_the_reason(trouble: str) -> None:
    for wanted in (["NPU"], ["NPU", "CPU"], ["CPU"]):
        choice = choose(wanted, [], CPU_PROVIDER, trouble=trouble, strict=False)
        assert choice == Choice(CPU_PROVIDER, trouble), wanted


def test_without_a_plugin_only_cpu_is_on_offer() -> None:
    choice = choose(["NPU", "CPU"], [], CPU_PROVIDER, strict=False)
    assert choice == Choice(CPU_PROVIDER, "the board names no plugin execution provider")


def test_a_strict_board_refuses_when_no_wanted_type_is_on_offer() -> None:
    with pytest.raises(
        ProviderUnavailable,
        match=r"^strict mode: the router needs a device of type NPU or GPU and there is none: "
        r"VendorNpuExecutionProvider lists no NPU or GPU device here \(only CPU\)$",
    ):
        choose(["NPU", "GPU"], [PLUGIN_CPU], CPU_PROVIDER, strict=True)
    with pytest.raises(ProviderUnavailable, match="names no plugin execution provider"):
        choose(["NPU"], [], CPU_PROVIDER, strict=True)


def test_a_strict_board_refuses_a_plugin_in_trouble_even_where_cpu_would_do() -> None:
    with pytest.raises(ProviderUnavailable, match=r"^strict mode: no provider library at /x\.so$"):
        choose(["CPU"], [], CPU_PROVIDER, trouble="no provider library at /x.so", strict=True)


def test_a_strict_board_takes_a_later_wanted_type() -> None:
    """Strict means nothing outside the board's list, not only its first entry."""
    choice = choose(["NPU", "CPU"], [PLUGIN_CPU], CPU_PROVIDER, strict=True)
    assert choice.offer == PLUGIN_CPU and "no NPU device" in choice.fallback


def test_no_device_type_named_is_an_error() -> None:
    with pytest.raises(ProviderUnavailable, match="name at least one"):
        choose([], [NPU], CPU_PROVIDER, strict=False)


class FakeSession:
    """What placement_of reads of an onnxruntime session: nodes per provider."""

    def __init__(self, **nodes: int) -> None:
        self.nodes = nodes

    def get_provider_graph_assignment_info(self) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(ep_name=name, get_nodes=lambda n=n: [object()] * n)
            for name, n in self.nodes.items()
        ]


def test_the_placement_counts_the_nodes_the_provider_took() -> None:
    session = FakeSession(VendorNpuExecutionProvider=400, CPUExecutionProvider=53)
    placement = placement_of(Choice(NPU), ["NPU"], session)
    assert placement == Placement(
        provider="VendorNpuExecutionProvider",
        device="NPU",
        vendor="Vendor",
        wanted=["NPU"],
        library="/usr/lib/libnpu.so",
        nodes=453,
        nodes_on_provider=400,
    )
    assert placement.summary() == (
        "VendorNpuExecutionProvider on NPU (Vendor), 400 of 453 nodes (the rest on the CPU)"
    )


def test_a_plugin_that_took_no_node_is_said_as_the_cpu_provider() -> None:
    placement = placement_of(Choice(NPU), ["NPU"], FakeSession(CPUExecutionProvider=453))
    assert (placement.provider, placement.device, placement.library) == (CPU, "CPU", "")
    assert placement.fallback == "VendorNpuExecutionProvider took none of the model's nodes"
    assert placement.summary().startswith("CPUExecutionProvider on CPU, a fallback: ")


def test_a_fallback_is_in_the_summary_after_the_provider_alone() -> None:
    placement = Placement(
        provider=CPU, device="CPU", vendor="Intel", wanted=["NPU"], fallback="no library"
    )
    assert placement.summary() == "CPUExecutionProvider on CPU (Intel), a fallback: no library"
    assert placement.summary().split()[0] == CPU  # what a reader of `router=(\S+)` gets
