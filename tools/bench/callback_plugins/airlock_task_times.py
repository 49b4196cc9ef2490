# The benchmark's record of each task result's own time on its host, for the per-task and
# per-role tables of docs/performance.md. profile_tasks times a task from its header to the
# next one, which only holds when the hosts run in lockstep (strategy linear); site.yml runs
# the two tiers side by side (strategy free), where headers interleave. This times each
# result from the moment its worker is queued (v2_runner_on_start) to its result, per host.
# Enabled by tools/bench/measure.py alone (callbacks_enabled); writes one JSON line per
# result to the file named by AIRLOCK_TASK_TIMES (nothing without it).
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: airlock_task_times
type: aggregate
short_description: Each task result's time on its host, as JSON lines (the benchmark's record)
description:
  - Writes one JSON object per task result (host, role, task, status, loop items, start and
    end on the run's clock) to the file named by the AIRLOCK_TASK_TIMES environment variable.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "airlock_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._t0 = time.monotonic()
        self._started: dict[tuple[str, str], float] = {}
        path = os.environ.get("AIRLOCK_TASK_TIMES")
        self._out = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (the run's lifetime)

    def v2_runner_on_start(self, host, task) -> None:
        self._started[(host.get_name(), task._uuid)] = time.monotonic()

    def _record(self, result, status: str) -> None:
        host, task = result._host.get_name(), result._task
        start = self._started.pop((host, task._uuid), None)
        if self._out is None or start is None:
            return
        res = result._result if isinstance(result._result, dict) else {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        items = len(res["results"]) if isinstance(res.get("results"), list) else 0
        role = task._role.get_name(include_role_fqcn=False) if task._role else ""
        self._out.write(json.dumps({
            "host": host, "role": role, "task": task.get_name(), "action": task.action, "status": status,
            "items": items, "start": round(start - self._t0, 4), "end": round(time.monotonic() - self._t0, 4),
        }) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")
