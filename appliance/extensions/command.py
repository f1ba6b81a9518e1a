"""``qey extension install WHEEL | list | remove NAME``: the extensions on the data partition.

They act on the data directory only; a running appliance picks up a change at its next
start (its agent types are fixed while it runs, as the router's table is)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance.settings import Settings


def add_extension_parser(sub: Any) -> None:
    """``sub``: the ``qey`` parser's subparsers (argparse's private action type)."""
    ext = sub.add_parser(
        "extension",
        help="install, list or remove extension agent types",
        description="Extensions are Python wheels that declare agent types under the "
        "'qey.agents' entry-point group. They install into $QEY_DATA_DIR/extensions/site "
        "(from the wheel alone: no network, no dependencies; what they require must already "
        "be in the appliance) and load at the next start. See docs/agents.md.",
    )
    esub = ext.add_subparsers(title="actions", required=True)
    inst = esub.add_parser("install", help="install a wheel", description="Install a wheel.")
    inst.add_argument("wheel", type=Path, metavar="WHEEL")
    inst.set_defaults(func=cmd_install)
    lst = esub.add_parser("list", help="list installed extensions", description="List them.")
    lst.set_defaults(func=cmd_list)
    rm = esub.add_parser("remove", help="remove an extension", description="Remove one.")
    rm.add_argument("name", metavar="NAME", help="its distribution name, as 'list' shows it")
    rm.set_defaults(func=cmd_remove)


# install/loader import the runtime and packaging: only for these commands, not every qey's
def cmd_install(args: argparse.Namespace) -> int:
    from appliance.extensions.install import install

    data_dir = Settings.load().data_dir
    info = install(args.wheel, data_dir)
    print(
        f"installed {info.name} {info.version} (agent types: "
        f"{', '.join(info.agent_entry_points)}); it loads at the appliance's next start"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from appliance.extensions.install import installed

    for ext in installed(Settings.load().data_dir):
        print(f"{ext.name} {ext.version}: {', '.join(ext.agent_entry_points) or 'no agent types'}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from appliance.extensions.install import remove

    name = remove(args.name, Settings.load().data_dir)
    print(f"removed {name}; it is gone at the appliance's next start")
    return 0
