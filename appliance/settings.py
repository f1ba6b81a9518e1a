"""Where the appliance keeps its data and what it may scan: read once at start.

Sources, later ones winning: built-in defaults, ``<data dir>/config.toml``, environment
(``QEY_DATA_DIR``, ``QEY_SCOPE``, ``QEY_SCOPE_CONFIRM_LARGE``). A bad value fails at start
with the file and field named; the scope is held to the same rules as the panel's.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from appliance.actions.webhook import Webhook, render
from appliance.durable import write_atomic
from appliance.egress import networks as egress_networks
from appliance.errors import BadCommand
from appliance.fleet.config import FleetSettings
from appliance.fleet.config import checked as checked_fleet
from appliance.scope import parse_network, scope_networks

COMMON_PORTS = [
    21,
    22,
    23,
    25,
    53,
    80,
    110,
    139,
    143,
    443,
    445,
    587,
    1433,
    3306,
    3389,
    5432,
    5900,
    6379,
    8000,
    8080,
    8443,
    9200,
    27017,
]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: Path
    scope: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1/32"])
    scope_confirm_large: bool = False  # the admin means a range past the size limit
    ports: list[int] = msgspec.field(default_factory=lambda: list(COMMON_PORTS))
    probe_timeout_s: float = 1.0
    scan_concurrency: int = 512  # the most; fewer where the open-files limit is low
    rules_file: Path | None = None  # port rules for the analyzer; None: the packaged ones
    board: str = "sim"  # hw/boards/<board>.toml, or a path to a profile ($QEY_BOARD)
    # the admin panel's HOST:PORTs ($QEY_WEB_LISTEN; empty: no panel); None: the board's
    web_listen: list[str] | None = None
    # addresses beyond the scope the appliance may reach (a webhook, a mail relay, a
    # resolver): the image's egress policy refuses everything else (appliance/egress.py)
    egress_allow: list[str] = msgspec.field(default_factory=list)
    # the admin's names for devices and networks ("nas" = "192.168.1.10"), which commands
    # may use ("scan the nas"); never looked up anywhere, and checked against the scope
    names: dict[str, str] = msgspec.field(default_factory=dict)
    # who says yes to a destructive action (block, quarantine, revoke): "admin" (qey
    # approvals, the panel), or "vote": approval_voters analyzers rate the finding behind it
    # again, each on its own, and approval_quorum of them must rate it as severe within
    # approval_deadline_s (an action with no finding behind it still waits for an admin)
    approval: Literal["admin", "vote"] = "admin"
    approval_voters: Annotated[int, msgspec.Meta(ge=1, le=16)] = 3
    approval_quorum: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    approval_deadline_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    # how long an admin has to approve one before it expires, not done (a week at most)
    admin_deadline_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 3600.0
    # where notices and tickets go, if anywhere (https only; on the image, also egress_allow);
    # webhook_ca_file: a CA (PEM, relative to the data directory) the receivers' certificates
    # are checked against instead of the system's; ticket_template: the ticket's JSON, its
    # strings' {title}, {body}, {host}, {job} and {action} filled in
    webhook_url: str | None = None
    ticket_url: str | None = None
    webhook_ca_file: Path | None = None
    ticket_template: str | None = None
    # several appliances as one system over a NATS broker: off until [fleet] names servers
    fleet: FleetSettings = msgspec.field(default_factory=FleetSettings)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "qey.db"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "control.sock"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("QEY_DATA_DIR") or default_data_dir(env)).expanduser()
        values: dict[str, object] = {}
        config = data_dir / "config.toml"
        if config.exists():
            try:
                values.update(tomllib.loads(config.read_text(encoding="utf-8")))
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{config}: {err}") from None
        values["data_dir"] = data_dir
        for relative in ("rules_file", "webhook_ca_file"):
            if isinstance(values.get(relative), str):
                values[relative] = data_dir / str(values[relative])
        if env.get("QEY_BOARD"):
            values["board"] = env["QEY_BOARD"]
        if "QEY_WEB_LISTEN" in env:  # empty: no panel
            values["web_listen"] = [
                a.strip() for a in env["QEY_WEB_LISTEN"].split(",") if a.strip()
            ]
        if env.get("QEY_SCOPE"):
            values["scope"] = [s.strip() for s in env["QEY_SCOPE"].split(",") if s.strip()]
        if env.get("QEY_SCOPE_CONFIRM_LARGE"):
            values["scope_confirm_large"] = env["QEY_SCOPE_CONFIRM_LARGE"]
        try:
            settings = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as err:
            raise ValueError(f"{config}: {err}") from None
        bad = [p for p in settings.ports if not 0 < p < 65536]
        if bad:
            raise ValueError(f"{config}: ports out of range: {bad}")
        try:
            egress_networks(settings.egress_allow)
        except ValueError as err:
            raise ValueError(f"{config}: egress_allow: {err}") from None
        for name, url in (
            ("webhook_url", settings.webhook_url),
            ("ticket_url", settings.ticket_url),
        ):
            if url is not None:
                try:
                    Webhook(url).check()
                except ValueError as err:
                    raise ValueError(f"{config}: {name}: {err}") from None
        if settings.ticket_template is not None:
            try:
                render(settings.ticket_template, {})
            except msgspec.DecodeError as err:
                raise ValueError(f"{config}: ticket_template is not JSON: {err}") from None
        if settings.approval_quorum > settings.approval_voters:
            raise ValueError(
                f"{config}: approval_quorum ({settings.approval_quorum}) is more than "
                f"approval_voters ({settings.approval_voters}): no vote could pass"
            )
        try:
            settings.fleet = checked_fleet(settings.fleet)
        except ValueError as err:
            raise ValueError(f"{config}: {err}") from None
        try:
            settings.names = device_names(settings.names)
        except ValueError as err:
            raise ValueError(f"{config}: names: {err}") from None
        try:
            networks = scope_networks(settings.scope, confirm_large=settings.scope_confirm_large)
        except ValueError as err:
            source = "$QEY_SCOPE" if env.get("QEY_SCOPE") else f"{config}: scope"
            raise ValueError(f"{source}: {err}") from None
        settings.scope = [str(n) for n in networks]
        return settings


_NAME = re.compile(r"[a-z][a-z0-9-]*(?: [a-z0-9-]+)*")


def device_names(names: Mapping[str, str]) -> dict[str, str]:
    """The ``[names]`` table, checked: each name is words of letters, digits and hyphens
    (spaces between words), each value an address or a network; names compare lowercased."""
    checked: dict[str, str] = {}
    for name, address in names.items():
        key = " ".join(name.lower().split())
        if not _NAME.fullmatch(key):
            raise ValueError(f"{name!r} is not a name: use letters, digits, hyphens and spaces")
        if key in checked:
            raise ValueError(f"{name!r} is named twice")
        try:
            checked[key] = str(parse_network(address))
        except BadCommand as err:
            raise ValueError(f"{name!r}: {err}") from None
        if checked[key].endswith(("/32", "/128")):
            checked[key] = checked[key].rsplit("/", 1)[0]
    return checked


def write_scope(data_dir: Path, scope: list[str], *, confirm_large: bool = False) -> None:
    """Save the scan scope to ``config.toml`` (the panel changes it), keeping everything else
    as the admin wrote it, comments and layout included (tomlkit edits the document, not its
    lines); the file is replaced whole, so a crash leaves the old one. ``confirm_large`` is
    saved with it, so a confirmed large range loads at the next start."""
    import tomlkit  # only here: the one place the appliance writes TOML

    config = data_dir / "config.toml"
    document = (
        tomlkit.parse(config.read_text(encoding="utf-8")) if config.exists() else tomlkit.document()
    )
    document["scope"] = scope
    if confirm_large:
        document["scope_confirm_large"] = True
    else:
        document.pop("scope_confirm_large", None)
    text = tomlkit.dumps(document)
    tomllib.loads(text)  # never write a file that would not load
    write_atomic(config, text.encode("utf-8"), mode=0o644)


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "qey"
