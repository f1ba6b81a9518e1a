"""The pages' frame: one HTML skeleton, escaping by default, no inline script or style.

Everything a page says goes through ``escape`` (or is markup built here from escaped parts),
so a task's objective or a command can never become markup. The Content-Security-Policy
(set in ``panel.py``) allows only this origin's script and style, so even a missed escape
could not run a script.
"""

from __future__ import annotations

from html import escape

NAV = [
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/schedules", "Schedules"),
    ("/approvals", "Approvals"),
    ("/submit", "Submit"),
    ("/events", "Live events"),
    ("/settings", "Settings"),
]


def e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def page(
    title: str, body: str, *, csrf: str | None = None, active: str = "", status_line: str = ""
) -> str:
    """A whole page. ``csrf`` (present when signed in) goes in a meta tag for the script and
    turns on the navigation and the sign-out button."""
    head_meta = f'<meta name="csrf-token" content="{e(csrf)}">' if csrf else ""
    nav = ""
    if csrf:
        links = "".join(
            f'<a href="{href}"{" class=active" if href == active else ""}>{e(text)}</a>'
            for href, text in NAV
        )
        nav = (
            f'<nav>{links}<form method="post" action="/logout" class="logout">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
            f'<button type="submit" id="logout">Sign out</button></form></nav>'
        )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · qEY-0</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{head_meta}<link rel="stylesheet" href="/static/panel.css">'
        '<script src="/static/panel.js" defer></script></head>'
        f'<body><header><span class="brand">qEY-0</span>{nav}</header>'
        f"<main><h1>{e(title)}</h1>{status_line}{body}</main></body></html>"
    )


def table(headers: list[str], rows: list[list[str]], *, id_: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{e(id_)}"' if id_ else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def notice(text: str, kind: str = "error") -> str:
    return f'<p class="notice {e(kind)}" role="alert">{e(text)}</p>'
