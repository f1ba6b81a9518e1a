"""Drawing a ``Screen`` the way the Neur Lines panel shows it: to a PNG, or to a terminal.

Each live agent is a line: a status dot, its name and slot indented by its depth in the job
tree, the event it last saw, and a "neuron line" whose length and brightness follow how many
events it handled this frame. Both renderers draw the same rows, so the terminal view is a
faithful preview of the picture.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from appliance.hal.display.budget import shown
from appliance.hal.display.messages import Status
from appliance.hal.display.screen import Screen, ShownLine

COLORS: dict[Status, tuple[int, int, int]] = {
    Status.IDLE: (110, 120, 130),
    Status.HANDLING: (64, 200, 255),
    Status.DONE: (80, 210, 110),
    Status.FAILED: (240, 70, 60),
    Status.CANCELLED: (230, 170, 40),
    Status.CRASHED: (220, 80, 220),
}
_ANSI: dict[Status, str] = {
    Status.IDLE: "\x1b[90m",
    Status.HANDLING: "\x1b[96m",
    Status.DONE: "\x1b[92m",
    Status.FAILED: "\x1b[91m",
    Status.CANCELLED: "\x1b[93m",
    Status.CRASHED: "\x1b[95m",
}
_MARK = {
    Status.IDLE: "·",
    Status.HANDLING: "●",
    Status.DONE: "✓",
    Status.FAILED: "✗",
    Status.CANCELLED: "-",
    Status.CRASHED: "!",
}
BACKGROUND = (12, 14, 20)
ROW_H = 16
HEADER_ROWS = 3
"""Status rows above the lines: state and counts, the newest job, and a notice for whoever
stands at the device (the one-time setup token)."""


def label(line: ShownLine) -> str:
    return f"{'  ' * line.depth}{shown(line.agent)}#{line.slot}"


def text_row(screen: Screen, row: int) -> str:
    """A status row as drawn: a display shows characters, it obeys none (no control codes
    from whoever typed a command may move the cursor or clear the notice below it)."""
    return shown(screen.texts.get(row, ""))


def render_image(screen: Screen) -> Image.Image:
    caps = screen.capabilities
    image = Image.new("RGB", (caps.width, caps.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for row in range(HEADER_ROWS):
        draw.text((6, 2 + row * ROW_H), text_row(screen, row), fill=(230, 230, 230), font=font)
    top = 4 + HEADER_ROWS * ROW_H
    draw.line((0, top - 2, caps.width, top - 2), fill=(50, 55, 65))
    name_w, event_w = caps.width * 0.42, caps.width * 0.28
    for i, line in enumerate(screen.lines()):
        y = top + i * ROW_H
        if y + ROW_H > caps.height:
            break
        color = COLORS[line.status]
        draw.ellipse((6, y + 4, 14, y + 12), fill=color)
        draw.text((20, y + 1), label(line), fill=color, font=font)
        draw.text((20 + name_w, y + 1), shown(line.event[:22]), fill=(170, 175, 185), font=font)
        start = 24 + name_w + event_w
        room = caps.width - start - 6
        length = room * min(1.0, 0.08 + line.hits / 16)
        glow = tuple(int(c * (0.35 + 0.65 * min(1.0, line.hits / 8))) for c in color)
        draw.line((start, y + 8, start + length, y + 8), fill=glow, width=3)
    if screen.frame is not None and screen.frame.total > len(screen.lines()):
        more = f"+{screen.frame.total - len(screen.lines())} more"
        draw.text((caps.width - 80, caps.height - ROW_H), more, fill=(150, 150, 150), font=font)
    return image


def render_png(screen: Screen, path: Path) -> None:
    """Write the picture atomically, so a reader (the web panel) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    render_image(screen).save(tmp, format="PNG")
    tmp.replace(path)


def render_text(screen: Screen, *, color: bool = True, width: int = 78) -> str:
    rows = [text_row(screen, r) for r in range(HEADER_ROWS)]
    rows.append("─" * width)
    for line in screen.lines():
        bar = "━" * min(24, line.hits)
        text = f"{_MARK[line.status]} {label(line):<32.32} {shown(line.event):<22.22} {bar}"
        rows.append(f"{_ANSI[line.status]}{text}\x1b[0m" if color else text)
    if screen.frame is not None and screen.frame.total > len(screen.lines()):
        rows.append(f"  +{screen.frame.total - len(screen.lines())} more")
    return "\n".join(rows)
