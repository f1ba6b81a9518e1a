"""Jobs written straight into a real graph, as the runtime writes them, for report tests."""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.events import JobSubmitted, TaskSpawned, TaskStatusChanged
from appliance.runtime import Store, TaskGraph


def finding(host: str, port: int, severity: str, title: str = "") -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "service": f"svc{port}",
        "severity": severity,
        "title": title or f"port {port} is open",
        "advice": f"close {port}",
    }


def posture(
    targets: list[str], findings: list[dict[str, Any]], failed: tuple[str, ...] = ()
) -> Any:
    return {
        "targets": targets,
        "hosts_probed": len(targets),
        "open": [],
        "findings": findings,
        "failed_targets": list(failed),
        "report_key": "report/x",
    }


class Jobs:
    """Jobs written into the graph as the runtime writes them: a job row, task rows, and
    each task's last status in the journal."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.graph = TaskGraph(store)

    def job(self, job_id: str, at: float, command: str = "analyze posture") -> None:
        self.graph.record_job(
            JobSubmitted(job_id=job_id, command_id=f"c-{job_id}", command=command, at=at)
        )

    def task(
        self,
        job_id: str,
        task_id: str,
        agent_type: str,
        *,
        at: float,
        parent: str | None = None,
        objective: str = "",
        status: str = "done",
        result: Any = None,
        detail: str = "",
    ) -> None:
        self.graph.record_spawn(
            TaskSpawned(
                job_id=job_id,
                task_id=task_id,
                agent_type=agent_type,
                objective=objective,
                parent_task_id=parent,
                at=at,
            )
        )
        if status != "running":
            self.graph.record(
                TaskStatusChanged(
                    job_id=job_id,
                    task_id=task_id,
                    agent_type=agent_type,
                    status=status,  # type: ignore[arg-type]
                    detail=detail,
                    result=msgspec.Raw(msgspec.json.encode(result)) if result is not None else None,
                    at=at,
                )
            )

    def posture_job(
        self, job_id: str, at: float, targets: list[str], findings: list[dict[str, Any]]
    ) -> None:
        self.job(job_id, at)
        self.task(job_id, f"{job_id}-root", "coordinator", at=at, result=posture(targets, findings))
