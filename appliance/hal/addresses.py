"""Where the panel can be reached, said again whenever that changes.

The appliance is often ready before the network is: it starts as soon as its data is mounted,
and a DHCP lease, or a cable plugged in later, comes when it comes. A panel bound to a wildcard
is reachable at whatever addresses the interfaces hold, so the console and the display say
each one as it appears (and each one that goes), rather than only those of the moment the
panel started, which may be loopback alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from appliance.hal.interfaces import link_states, reachable_urls

# Seconds between looks at the interfaces' addresses: a lease is said within this, and a look
# costs one listing of the kernel's addresses (psutil), nothing sent on any network.
POLL_S = 5.0
# Seconds a panel on a wildcard may be reachable from the device alone before the console
# says what its interfaces look like: when a lease never comes, the first thing to know is
# whether the link is down, up without an address, or not there at all.
ALONE_S = 60.0


class PanelAddresses:
    """The panel's reachable URLs (``qey panel URL`` on the console for each new one,
    ``qey panel gone URL`` for each lost one), for ``urls`` as the panel bound them."""

    def __init__(
        self,
        urls: Sequence[str],
        say: Callable[[str], None],
        *,
        reachable: Callable[[str], list[str]] = reachable_urls,
        links: Callable[[], str] = link_states,
    ) -> None:
        self._bound = list(urls)
        self._say = say
        self._reachable = reachable
        self._links = links
        self.current: list[str] = []

    def refresh(self) -> bool:
        """Look at the addresses now and say what changed; whether anything did."""
        now = [u for url in self._bound for u in self._reachable(url)]
        if now == self.current:
            return False
        for url in now:
            if url not in self.current:
                self._say(f"qey panel {url}")
        for url in self.current:
            if url not in now:
                self._say(f"qey panel gone {url}")
        self.current = now
        return True

    @property
    def from_elsewhere(self) -> str | None:
        """The URL to show someone standing at the device: the first one reachable from
        another machine (loopback is reachable only from the device itself), if any."""
        for url in self.current:
            host = (urlsplit(url).hostname or "").strip("[]")
            try:
                if not ipaddress.ip_address(host).is_loopback:
                    return url
            except ValueError:  # a name, not an address: reachable as far as we know
                return url
        return None

    async def watch(
        self,
        on_change: Callable[[], None] | None = None,
        every_s: float = POLL_S,
        alone_s: float = ALONE_S,
    ) -> None:
        """Refresh every ``every_s`` until cancelled; ``on_change`` after each change. A panel
        on a wildcard still reachable from this device alone after ``alone_s`` has the console
        say, once, what the interfaces look like."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        explained = not any(_is_wildcard(url) for url in self._bound)
        while True:
            await asyncio.sleep(every_s)
            if await asyncio.to_thread(self.refresh) and on_change is not None:
                on_change()
            if explained:
                continue
            if self.from_elsewhere is not None:  # a lease came: nothing to explain, ever
                explained = True
            elif loop.time() - started >= alone_s:
                explained = True
                links = await asyncio.to_thread(self._links)
                self._say(
                    f"qey network: the panel is reachable from this device alone so far: {links}"
                )


def _is_wildcard(url: str) -> bool:
    return urlsplit(url).hostname in ("0.0.0.0", "::")
