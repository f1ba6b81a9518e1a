"""The arm64 image (the board's, qey0 and qemu-arm64 are one image) boots under TCG on QEMU's
virt machine through UEFI to the appliance's ready line, and its panel answers through the
forwarded port."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.qemu.conftest import READY_DEADLINE_S, Guest, booted
from tests.qemu.test_boot import first_contact, session

pytestmark = [
    pytest.mark.qemu_arm64,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    yield from booted("qemu-arm64", tmp_path_factory)


def test_the_arm64_image_boots_to_ready_and_serves_its_panel(guest: Guest) -> None:
    ready = guest.wait_for(r"qey ready (\S+) a .*router=(\S+)", READY_DEADLINE_S)
    boot_to_ready = time.monotonic() - guest.started
    started = guest.wait_for(r"qey started in ([0-9.]+) s: (.*)", 30)
    guest.wait_for(r"qey setup token [A-Z0-9-]+", 30)
    assert ready.group(2) == "CPUExecutionProvider"  # the qemu board profile asks for CPU only
    # a fresh device: its first page is the first-time setup (/login sends there)
    setup = first_contact(guest, session(), f"{guest.base_url}/setup")
    assert setup.status_code == 200 and 'name="password"' in setup.text
    guest.record_boot(ready.group(1), boot_to_ready, started.group(0))
    policy = re.search(r"qey egress policy: .*\(loaded in ([0-9.]+) s\)", guest.log())
    assert policy, guest.log()[-5000:]
    assert policy.start() < guest.log().index("qey ready"), "ready before its egress policy"
    print(policy.group(0))
