"""The service's client: `hrm-edge solve TASKS --server URL` as a function (standard library only).

Why the standard library: a client on another device (a robot's controller, a CI job) should not
need the serve extra. Each task is one POST /solve?id=TASK_ID carrying the task file's JSON; up to
`concurrency` tasks are in flight at once (their puzzles interleave in the server's slots); a 503
(queue full) is retried after its Retry-After, up to `retries` times. The answers' attempts form the
same submission `hrm-edge solve` writes locally (tests/test_serve.py compares them).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hrm_edge.data.arc import ArcTask
from hrm_edge.errors import HrmEdgeError


@dataclass
class RemoteResult:
    """What the server answered: the submission and, per task, its full answer (steps, votes, timings)."""

    submission: dict[str, list[dict[str, list[list[int]]]]]
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    retries: int = 0  # 503s waited out


def _request(url: str, *, body: bytes | None = None, token: str | None = None, timeout: float = 300.0
             ) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HrmEdgeError(f"cannot reach the server: {reason}", url) from None


def _reason(status: int, data: bytes) -> str:
    try:
        return str(json.loads(data)["error"])
    except (ValueError, KeyError, TypeError):
        return data.decode("utf-8", "replace").strip().splitlines()[0][:200] if data.strip() else f"HTTP {status}"


def server_info(url: str, *, token: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """GET /health: the server's model, canvas and solving options (what its answers depend on)."""
    status, _, data = _request(url.rstrip("/") + "/health", token=token, timeout=timeout)
    if status != 200:
        raise HrmEdgeError(f"server health check answered {status}: {_reason(status, data)}", url)
    return json.loads(data)


def option_mismatches(info: dict[str, Any], **wanted: Any) -> list[str]:
    """Which of the caller's solve options (augment, attempts, halt, seed) the server does not use: the server
    solves with its own, so `solve --server` names each difference instead of silently ignoring a flag."""
    return [f"--{k} {v} (the server uses {info.get(k)!r})" for k, v in wanted.items()
            if v is not None and info.get(k) != v]


def solve_task(url: str, task: ArcTask, *, token: str | None = None, timeout: float = 300.0, retries: int = 20
               ) -> tuple[dict[str, Any], int]:
    """One task through POST /solve; returns the answer and how many 503s were waited out."""
    body = json.dumps(task.to_json(), separators=(",", ":")).encode()
    target = f"{url.rstrip('/')}/solve?id={quote(task.id, safe='')}"
    for attempt in range(retries + 1):
        status, headers, data = _request(target, body=body, token=token, timeout=timeout)
        if status == 200:
            return json.loads(data), attempt
        if status == 503 and attempt < retries:
            wait = headers.get("Retry-After") or headers.get("retry-after") or "1"
            time.sleep(min(30.0, float(wait) if wait.replace(".", "", 1).isdigit() else 1.0))
            continue
        raise HrmEdgeError(f"task {task.id}: server answered {status}: {_reason(status, data)}", url)
    raise AssertionError("unreachable")


def solve_remote(url: str, tasks: Sequence[ArcTask], *, token: str | None = None, concurrency: int = 4,
                 timeout: float = 300.0, retries: int = 20,
                 on_task: Callable[[str], None] | None = None) -> RemoteResult:
    """Every task through the server, `concurrency` at a time; the submission keeps the task order."""
    if concurrency < 1:
        raise HrmEdgeError(f"concurrency must be >= 1, got {concurrency}")
    result = RemoteResult({})

    def one(task: ArcTask) -> tuple[str, dict[str, Any], int]:
        answer, waited = solve_task(url, task, token=token, timeout=timeout, retries=retries)
        if on_task is not None:
            on_task(task.id)
        return task.id, answer, waited

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for tid, answer, waited in pool.map(one, tasks):
            result.submission[tid] = answer["attempts"]
            result.answers[tid] = answer
            result.retries += waited
    return result
