"""Webhooks: a notice or a ticket sent as JSON over HTTPS to a URL the admin configured
(``webhook_url``, ``ticket_url`` in config.toml), with aiohttp's client. Nothing else leaves
the device: no URL, no request. On the image the receiver must be in ``egress_allow``.

The actions run in a worker thread (they wait on SQLite and nft), so a delivery runs its own
short event loop there. A receiver that does not answer 2xx within the timeout fails the
action, recorded with why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from appliance.errors import ActionFailed

TIMEOUT_S = 15.0


class Webhook(msgspec.Struct, frozen=True):
    """Where to send, and whom to trust: the system's CAs, or the admin's own (a receiver on
    the LAN with a certificate of its own making)."""

    url: str
    ca_file: Path | None = None

    def check(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{self.url!r} is not an https:// URL (nothing goes out in clear)")


def render(template: str, values: dict[str, str]) -> Any:
    """A ticket's JSON from the admin's template: every string in it has ``{title}``,
    ``{body}``, ``{host}``, ... replaced (as text, so no value can change the JSON's shape)."""

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            for key, value in values.items():
                node = node.replace("{" + key + "}", value)
            return node
        if isinstance(node, list):
            return [fill(n) for n in node]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    return fill(msgspec.json.decode(template))


def deliver(hook: Webhook, body: Any, *, timeout_s: float = TIMEOUT_S) -> None:
    """POST ``body`` as JSON; ActionFailed unless the receiver answers 2xx."""
    import asyncio  # see _post: the settings import this module

    asyncio.run(_post(hook, body, timeout_s))


async def _post(hook: Webhook, body: Any, timeout_s: float) -> None:
    # imported here: the settings check URLs with this module, and the egress loader, a
    # Python start of its own at boot, reads the settings without needing an HTTP client
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=str(hook.ca_file) if hook.ca_file else None)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.post(
                hook.url,
                data=msgspec.json.encode(body),
                ssl=context,
                headers={"Content-Type": "application/json"},
            ) as resp,  # fmt: skip
        ):
            if resp.status // 100 != 2:
                raise ActionFailed(f"the webhook {hook.url} answered HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as err:
        raise ActionFailed(f"the webhook {hook.url} could not be reached: {err}") from None
