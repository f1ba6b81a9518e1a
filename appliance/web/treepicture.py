"""A job's task tree as a picture laid out on the server (``web/tree.svg`` draws it): no
script, no layout library in the browser.

Layout is the classic tidy one for small trees: leaves take the next free column left to
right in spawn order, a parent sits centred over its children, depth is the row. Each task is
a box coloured by status and linked to its own page (status, result, chain to the command).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from appliance.runtime import JobTree, TaskNode

BOX_W, BOX_H = 188, 56
GAP_X, GAP_Y = 16, 40
MARGIN = 12
MAX_NODES = 400  # beyond this a picture stops helping; the text tree still has them all

FILL = {
    "running": "#dbeafe",
    "done": "#dcfce7",
    "failed": "#fee2e2",
    "cancelled": "#fef3c7",
    "restarted": "#f3e8ff",
}
STROKE = {
    "running": "#2563eb",
    "done": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#d97706",
    "restarted": "#9333ea",
}


@dataclass(frozen=True, slots=True)
class Box:
    task_id: str
    x: int
    y: int
    label: str  # "DataCollector-2": the type, numbered in spawn order
    device: str  # the fleet device that ran it ("" for this one)
    objective: str
    tooltip: str
    status: str
    fill: str
    stroke: str


@dataclass(frozen=True, slots=True)
class TreePicture:
    """Where everything goes; ``web/tree.svg`` draws it."""

    width: int
    height: int
    boxes: list[Box]
    lines: list[tuple[int, int, int, int]]  # parent's bottom centre to child's top centre
    more: int  # tasks past MAX_NODES, drawn only in the text tree
    box_w: int = BOX_W
    box_h: int = BOX_H
    margin: int = MARGIN


def tree_picture(tree: JobTree) -> TreePicture:
    nodes = tree.tasks[:MAX_NODES]
    shown = {n.task_id for n in nodes}
    kids: dict[str | None, list[TaskNode]] = defaultdict(list)
    for n in nodes:
        parent = n.parent_task_id if n.parent_task_id in shown else None
        kids[parent].append(n)
    numbers: dict[str, int] = defaultdict(int)
    label: dict[str, str] = {}
    for n in nodes:
        numbers[n.agent_type] += 1
        label[n.task_id] = f"{_title(n.agent_type)}-{numbers[n.agent_type]}"

    pos: dict[str, tuple[float, int]] = {}
    next_col = 0

    def place(node: TaskNode, depth: int) -> float:
        nonlocal next_col
        children = kids.get(node.task_id, [])
        if not children:
            x = float(next_col)
            next_col += 1
        else:
            xs = [place(c, depth + 1) for c in children]
            x = (xs[0] + xs[-1]) / 2
        pos[node.task_id] = (x, depth)
        return x

    for root in kids.get(None, []):
        place(root, 0)
    cols = max(next_col, 1)
    rows = max((d for _, d in pos.values()), default=0) + 1
    more = max(len(tree.tasks) - MAX_NODES, 0)
    width = MARGIN * 2 + cols * BOX_W + (cols - 1) * GAP_X
    height = MARGIN * 2 + rows * BOX_H + (rows - 1) * GAP_Y + (20 if more else 0)

    def corner(task_id: str) -> tuple[int, int]:
        x, d = pos[task_id]
        return round(MARGIN + x * (BOX_W + GAP_X)), MARGIN + d * (BOX_H + GAP_Y)

    lines = []
    for n in nodes:
        if n.parent_task_id in pos and n.task_id in pos:
            px, py = corner(n.parent_task_id)
            cx, cy = corner(n.task_id)
            lines.append((px + BOX_W // 2, py + BOX_H, cx + BOX_W // 2, cy))
    boxes = [
        Box(
            task_id=n.task_id,
            x=corner(n.task_id)[0],
            y=corner(n.task_id)[1],
            label=label[n.task_id],
            device=n.device or "",
            objective=n.objective,
            tooltip=(n.objective or n.agent_type) + (f" (on {n.device})" if n.device else ""),
            status=n.status,
            fill=FILL.get(n.status, "#f1f5f9"),
            stroke=STROKE.get(n.status, "#475569"),
        )
        for n in nodes
        if n.task_id in pos
    ]
    return TreePicture(round(width), round(height), boxes, lines, more)


def _title(agent_type: str) -> str:
    return agent_type.replace("_", " ").title().replace(" ", "")
