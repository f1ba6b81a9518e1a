"""A job's task tree drawn as SVG, on the server: no script, no layout library in the browser.

Layout is the classic tidy one for small trees: leaves take the next free column left to
right in spawn order, a parent sits centred over its children, depth is the row. Each task is
a box coloured by status and linked to its own page (status, result, chain to the command).
Text is escaped; colours are presentation attributes, so the page's CSP needs no inline style.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

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


def tree_svg(tree: JobTree) -> str:
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
    width = MARGIN * 2 + cols * BOX_W + (cols - 1) * GAP_X
    height = (
        MARGIN * 2 + rows * BOX_H + (rows - 1) * GAP_Y + (20 if len(tree.tasks) > MAX_NODES else 0)
    )

    def box(task_id: str) -> tuple[float, float]:
        x, d = pos[task_id]
        return MARGIN + x * (BOX_W + GAP_X), MARGIN + d * (BOX_H + GAP_Y)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tree" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="task tree of {escape(tree.job_id)}" font-family="sans-serif" font-size="12">'
    ]
    for n in nodes:
        parent = n.parent_task_id
        if parent in pos and n.task_id in pos:
            px, py = box(parent)
            cx, cy = box(n.task_id)
            out.append(
                f'<line x1="{px + BOX_W / 2:.0f}" y1="{py + BOX_H:.0f}" '
                f'x2="{cx + BOX_W / 2:.0f}" y2="{cy:.0f}" stroke="#94a3b8" stroke-width="1.5"/>'
            )
    for n in nodes:
        if n.task_id not in pos:
            continue
        x, y = box(n.task_id)
        status = n.status
        out.append(
            f'<a href="/tasks/{escape(n.task_id)}" class="node" data-task="{escape(n.task_id)}" '
            f'data-status="{escape(status)}">'
            f"<title>{escape(n.objective or n.agent_type)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{FILL.get(status, "#f1f5f9")}" stroke="{STROKE.get(status, "#475569")}" '
            f'stroke-width="1.5"/>'
            f'<text x="{x + 8:.0f}" y="{y + 18:.0f}" font-weight="bold" fill="#0f172a">'
            f"{escape(label[n.task_id])}</text>"
            f'<text x="{x + 8:.0f}" y="{y + 33:.0f}" fill="#334155">'
            f"{escape(_clip(n.objective, 28))}</text>"
            f'<text x="{x + 8:.0f}" y="{y + 48:.0f}" fill="{STROKE.get(status, "#475569")}">'
            f"{escape(status)} · {escape(n.task_id)}</text></a>"
        )
    if len(tree.tasks) > MAX_NODES:
        out.append(
            f'<text x="{MARGIN}" y="{height - 6:.0f}" fill="#475569">'
            f"and {len(tree.tasks) - MAX_NODES} more tasks (see the text tree)</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _title(agent_type: str) -> str:
    return agent_type.replace("_", " ").title().replace(" ", "")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
