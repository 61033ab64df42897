"""`hrm-edge serve` for real: the command in a subprocess on a free 127.0.0.1 port, spoken to over HTTP.

Every request has a timeout and every server is killed at the end of its test whatever happened, so a
hang fails a test instead of the suite. The server's answers are compared with `hrm-edge solve` on the
same tasks (exact attempts), through the service's own client and through several concurrent clients.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _spread import spread_for_tasks
from conftest import ROOT, run_inprocess

from hrm_edge.data.arc import load_tasks

TOKEN = "s3cret-token"
HTTP_TIMEOUT = 60.0
START_TIMEOUT = 120.0


class Server:
    """`hrm-edge serve ARGS --port 0` in a subprocess; `url` once it announced its address."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                        OMP_NUM_THREADS="1", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "hrm_edge.cli", "serve", *args, "--port", "0",
                                      "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=full_env)
        self.lines: list[str] = []
        self._announced = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._announced.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.stop()
            pytest.fail("server did not start:\n" + "".join(self.lines))
        line = next(ln for ln in self.lines if "serving on http://" in ln)
        self.url = line.split("serving on ")[1].split()[0]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "serving on http://" in line:
                self._announced.set()
        self._announced.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def server_factory() -> Iterator:
    started: list[Server] = []

    def start(*args: str, **kw) -> Server:
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def tasks(tasks_dir: Path) -> list:
    return load_tasks(tasks_dir).tasks


@pytest.fixture(scope="module")
def spread_ckpt(tasks: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's tiny model with its halting spread over segments 1..4 on these tasks (tests/_spread.py)."""
    return spread_for_tasks(tmp_path_factory.mktemp("spread") / "spread.pt", tasks, 4)


@pytest.fixture(scope="module")
def local_submission(spread_ckpt: Path, tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What `hrm-edge solve` writes for the kit's tasks with the served options (static batches of 16)."""
    out = tmp_path_factory.mktemp("local") / "sub.json"
    r = run_inprocess("solve", str(tasks_dir), "--ckpt", str(spread_ckpt), "--augment", "4", "--halt", "adaptive",
                      "--out", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def served(spread_ckpt: Path) -> Iterator[Server]:
    """Continuous batching over 4 slots, adaptive halting (spread over the segments), token from the environment."""
    s = Server("--ckpt", str(spread_ckpt), "--slots", "4", "--halt", "adaptive", "--augment", "4",
               "--max-queue", "200", env={"HRM_EDGE_SERVE_TOKEN": TOKEN})
    yield s
    s.stop()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _post(url: str, task: object, task_id: str = "t", headers: dict | None = None, content: bytes | None = None
          ) -> httpx.Response:
    body = content if content is not None else json.dumps(task).encode()
    return httpx.post(f"{url}/solve", params={"id": task_id}, content=body, timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json", **(_auth() if headers is None else headers)})


def _big(task, copies: int) -> dict:
    """The task with its test inputs repeated: a request that keeps the slots busy for a while."""
    obj = task.to_json()
    obj["test"] = obj["test"] * copies
    return obj


def _metrics(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(f"{url}/metrics", headers=_auth(), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out


def _wait_busy(url: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        m = _metrics(url)
        if m["hrm_edge_slots_busy"] > 0 or m["hrm_edge_queue_depth"] > 0:
            return
        time.sleep(0.01)
    pytest.fail("the request never reached the slots")


# --------------------------------------------------------------------------------------------------
def test_client_submission_equals_local_solve(served: Server, tasks: list, local_submission: dict) -> None:
    from hrm_edge.serve.client import option_mismatches, server_info, solve_remote

    info = server_info(served.url)
    assert (info["status"], info["canvas"], info["augment"], info["halt"]) == ("ok", 10, 4, "adaptive")
    assert option_mismatches(info, augment=4, attempts=2, halt="adaptive", seed=0) == []
    assert option_mismatches(info, augment=8, halt="max") == ["--augment 8 (the server uses 4)",
                                                              "--halt max (the server uses 'adaptive')"]
    got = solve_remote(served.url, tasks, token=TOKEN, concurrency=3)
    assert got.submission == local_submission
    assert list(got.submission) == [t.id for t in tasks]
    for t in tasks:
        ans = got.answers[t.id]
        assert len(ans["tests"]) == len(t.test) and ans["puzzles"] == 4 * len(t.test)
        assert all(1 <= s <= 4 for test in ans["tests"] for s in test["steps"])
    steps = [s for a in got.answers.values() for test in a["tests"] for s in test["steps"]]
    assert len(set(steps)) > 1  # puzzles left their slots at different segments


def test_concurrent_clients_get_the_local_answers(served: Server, tasks: list, local_submission: dict) -> None:
    """Several clients at once: their puzzles share the slots, each gets exactly its own answers."""
    results: dict[tuple[int, str], object] = {}

    def client(k: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT, headers=_auth()) as c:
            for t in (tasks if k % 2 == 0 else tasks[::-1]):
                r = c.post(f"{served.url}/solve", params={"id": t.id}, content=json.dumps(t.to_json()))
                results[(k, t.id)] = r.json()["attempts"] if r.status_code == 200 else r.status_code

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(HTTP_TIMEOUT * len(tasks))
    assert len(results) == 4 * len(tasks)
    for (_, tid), attempts in results.items():
        assert attempts == local_submission[tid]


def test_bad_requests_refused_while_a_good_one_completes(served: Server, tasks: list, spread_ckpt: Path,
                                                         tmp_path: Path) -> None:
    big = _big(tasks[0], 45)  # 180 puzzles
    good: dict[str, httpx.Response] = {}
    th = threading.Thread(target=lambda: good.setdefault("r", _post(served.url, big, tasks[0].id)))
    th.start()
    _wait_busy(served.url)
    over = [[1] * 11 for _ in range(3)]  # 11 columns on a 10x10 model
    cases = [
        (_post(served.url, None, content=b"{not json"), 400, "not JSON"),
        (_post(served.url, {"train": [], "test": []}), 422, "malformed task"),
        (_post(served.url, {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": over}]}), 422,
         "larger than the 10x10 canvas"),
        (_post(served.url, {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}), 422,
         "ragged rows"),
        (_post(served.url, None, content=b"[" + b"0," * 600_000 + b"0]"), 413, "over the limit"),
        (_post(served.url, tasks[0].to_json(), task_id="../etc"), 400, "task id"),
        (_post(served.url, tasks[0].to_json(), headers={}), 401, "bearer token"),
    ]
    for resp, status, words in cases:
        assert resp.status_code == status, (status, resp.text)
        reason = resp.json()["error"]
        assert words in reason and "\n" not in reason
    assert httpx.get(f"{served.url}/solve", timeout=HTTP_TIMEOUT).status_code == 405
    th.join(HTTP_TIMEOUT)
    r = good["r"]
    assert r.status_code == 200, r.text
    local = run_inprocess("solve", str(_write(tmp_path, tasks[0].id, big)), "--ckpt", str(spread_ckpt), "--augment",
                          "4", "--halt", "adaptive", "--out", str(tmp_path / "sub.json"))
    assert local.returncode == 0, local.stderr
    assert r.json()["attempts"] == json.loads((tmp_path / "sub.json").read_text())[tasks[0].id]


def _write(folder: Path, task_id: str, obj: dict) -> Path:
    path = folder / "tasks" / f"{task_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_token_and_health(served: Server, tasks: list) -> None:
    assert _post(served.url, tasks[0].to_json(), headers={}).status_code == 401
    r = _post(served.url, tasks[0].to_json(), headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{served.url}/metrics", timeout=HTTP_TIMEOUT).status_code == 401
    assert _post(served.url, tasks[0].to_json(), tasks[0].id).status_code == 200
    assert httpx.get(f"{served.url}/health", timeout=HTTP_TIMEOUT).json()["status"] == "ok"


def test_metrics_count_what_happened(tiny_ckpt: Path, tasks: list, server_factory) -> None:
    s = server_factory("--ckpt", str(tiny_ckpt), "--slots", "2", "--halt", "adaptive", "--augment", "2",
                       "--max-queue", "20", "--token", TOKEN)
    for t in tasks:
        assert _post(s.url, t.to_json(), t.id).status_code == 200
    assert _post(s.url, None, content=b"nope").status_code == 400
    m = _metrics(s.url)
    n = sum(2 * len(t.test) for t in tasks)
    assert m['hrm_edge_requests_total{code=200}'] == len(tasks)
    assert m['hrm_edge_requests_total{code=400}'] == 1
    assert m["hrm_edge_puzzles_total"] == n
    assert m["hrm_edge_puzzle_latency_seconds_count"] == n
    assert m["hrm_edge_request_latency_seconds_count"] == len(tasks)
    assert m["hrm_edge_queue_depth"] == 0 and m["hrm_edge_slots_busy"] == 0 and m["hrm_edge_slots"] == 2
    assert m["hrm_edge_segments_total"] >= n / 2
    assert 0 < m["hrm_edge_slot_occupancy"] <= 1 and m["hrm_edge_puzzles_per_second"] > 0
    for q in ("0.5", "0.9", "0.99"):
        assert m[f"hrm_edge_request_latency_seconds{{quantile={q}}}"] > 0


def test_full_queue_gets_503_with_retry_after(tiny_ckpt: Path, tasks: list, server_factory) -> None:
    """One slot, every segment run: a 64-puzzle request fills the queue; another one gets 503 until it drains."""
    s = server_factory("--ckpt", str(tiny_ckpt), "--slots", "1", "--halt", "max", "--augment", "8",
                       "--max-queue", "64", "--token", TOKEN)
    big = _big(tasks[0], 8 // len(tasks[0].test))
    assert len(big["test"]) * 8 == 64
    first: dict[str, httpx.Response] = {}
    th = threading.Thread(target=lambda: first.setdefault("r", _post(s.url, big, tasks[0].id)))
    th.start()
    _wait_busy(s.url)
    r = _post(s.url, big, tasks[0].id)
    assert r.status_code == 503, r.text
    assert "queue full" in r.json()["error"] and int(r.headers["retry-after"]) >= 1
    too_big = _post(s.url, _big(tasks[0], 9), tasks[0].id)  # more puzzles than the queue can ever hold
    assert too_big.status_code == 413 and "--max-queue 64" in too_big.json()["error"]
    th.join(HTTP_TIMEOUT)
    assert first["r"].status_code == 200
    assert _post(s.url, big, tasks[0].id).status_code == 200  # drained: accepted again


def test_sigterm_drains_in_flight_requests_and_exits_0(tiny_ckpt: Path, tasks: list, server_factory) -> None:
    s = server_factory("--ckpt", str(tiny_ckpt), "--slots", "1", "--halt", "max", "--augment", "8",
                       "--token", TOKEN)
    want = _post(s.url, tasks[0].to_json(), tasks[0].id).json()["attempts"]
    big = _big(tasks[0], 6)
    got: dict[str, httpx.Response] = {}
    th = threading.Thread(target=lambda: got.setdefault("r", _post(s.url, big, tasks[0].id)))
    th.start()
    _wait_busy(s.url)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # no new connections once draining
        httpx.get(f"{s.url}/health", timeout=5.0)
    th.join(HTTP_TIMEOUT)
    assert got["r"].status_code == 200
    assert got["r"].json()["attempts"] == want * 6
    assert s.proc.wait(timeout=60) == 0
    assert any("stopped" in ln for ln in s.lines)


def test_client_errors_are_one_line(served: Server, tasks: list) -> None:
    from hrm_edge.errors import HrmEdgeError
    from hrm_edge.serve.client import solve_remote

    with pytest.raises(HrmEdgeError, match="server answered 401: missing or wrong bearer token"):
        solve_remote(served.url, tasks[:1], token="wrong")
    with pytest.raises(HrmEdgeError, match="cannot reach the server"):
        solve_remote("http://127.0.0.1:9", tasks[:1], timeout=5)


def test_timeout_answers_504_and_drops_the_waiting_puzzles(tiny_ckpt: Path, tasks: list, server_factory) -> None:
    s = server_factory("--ckpt", str(tiny_ckpt), "--slots", "1", "--halt", "max", "--augment", "8",
                       "--timeout", "2", "--max-queue", "1000", "--token", TOKEN)
    r = _post(s.url, _big(tasks[0], 60), tasks[0].id)  # 480 puzzles x 4 segments on one slot: well over 2 s
    assert r.status_code == 504 and "not answered within --timeout 2 s" in r.json()["error"]
    assert _metrics(s.url)["hrm_edge_queue_depth"] == 0  # its waiting puzzles were dropped
    ok = _post(s.url, tasks[1].to_json(), tasks[1].id)  # 8 puzzles x 4 segments: answered in time
    assert ok.status_code == 200 and len(ok.json()["attempts"]) == len(tasks[1].test)


def test_command_restates_the_rooms_choices() -> None:
    from hrm_edge.commands import serve as cmd
    from hrm_edge.runtime.scheduler import SCHEDULES
    from hrm_edge.serve.app import TOKEN_ENV
    from hrm_edge.serve.service import SERVE_HALT_MODES

    assert (cmd.SERVE_HALT, cmd.SCHEDULES, cmd.TOKEN_ENV) == (SERVE_HALT_MODES, SCHEDULES, TOKEN_ENV)


def test_bad_options_are_one_error_line(tiny_ckpt: Path) -> None:
    r = run_inprocess("serve", "--ckpt", str(tiny_ckpt), "--halt", "batch-mean")
    assert r.returncode == 2 and "--halt must be one of max, adaptive" in r.stderr
    r = run_inprocess("serve", "--ckpt", str(tiny_ckpt), "--schedule", "dynamic")
    assert r.returncode == 2 and "--schedule must be one of static, continuous" in r.stderr
    r = run_inprocess("serve")
    assert r.returncode == 2 and "give exactly one of --ckpt, --bundle, --engine" in r.stderr


def test_solve_cli_on_server_writes_the_local_submission(served: Server, tasks_dir: Path, local_submission: dict,
                                                         tmp_path: Path) -> None:
    """`hrm-edge solve TASKS --server URL`: the same submission file as local solving, scores beside it; a flag
    the server does not use, given explicitly, is refused in one line before any request is made."""
    out = tmp_path / "remote.json"
    r = run_inprocess("solve", str(tasks_dir), "--server", served.url, "--token", TOKEN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == local_submission
    scores = json.loads((tmp_path / "remote_scores.json").read_text())
    assert scores["server"]["halt"] == "adaptive" and scores["summary"]["tasks"] == len(local_submission)
    refused = tmp_path / "refused.json"
    r = run_inprocess("solve", str(tasks_dir), "--server", served.url, "--token", TOKEN, "--augment", "8",
                      "--out", str(refused))
    assert r.returncode == 2 and not refused.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--augment 8 (the server uses 4)" in lines[0], r.stderr
    r = run_inprocess("solve", str(tasks_dir), "--server", served.url, "--ckpt", "x.pt", "--out", str(refused))
    assert r.returncode == 2 and "drop --ckpt" in r.stderr and not refused.exists()


def test_solve_cli_continuous_schedule_equals_static(spread_ckpt: Path, tasks_dir: Path, local_submission: dict,
                                                    tmp_path: Path) -> None:
    """`solve --schedule continuous` (halted slots take the next puzzle) writes exactly the static submission,
    with the same segments per puzzle in the scores file."""
    out = tmp_path / "cont.json"
    r = run_inprocess("solve", str(tasks_dir), "--ckpt", str(spread_ckpt), "--augment", "4", "--halt", "adaptive",
                      "--schedule", "continuous", "--batch", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == local_submission
    assert json.loads((tmp_path / "cont_scores.json").read_text())["options"]["schedule"] == "continuous"


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_runtime_failure_answers_500_and_the_service_keeps_serving(tiny_ckpt: Path, tasks: list) -> None:
    """The model call raising (a lost device, a bad engine) answers the requests in flight 500 with the reason,
    /health turns degraded with it, and the next request is served by a fresh scheduler (in process: the app
    under starlette's test client, the runner's call made to fail once)."""
    from starlette.testclient import TestClient

    from hrm_edge.serve.app import create_app
    from hrm_edge.serve.service import ServeOptions, Service
    from hrm_edge.solve.runners import open_runtime

    rt = open_runtime("torch", tiny_ckpt, device="cpu")
    real, calls = rt.runner.step_session, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: device lost\n(second line)")
        return real(*args, **kw)

    rt.runner.step_session = flaky  # what the continuous scheduler calls once per segment
    service = Service(rt, ServeOptions(slots=2, augment=2, schedule="continuous", timeout=60.0))
    task = tasks[0]
    with TestClient(create_app(service)) as client:
        r = client.post("/solve", params={"id": task.id}, json=task.to_json())
        assert r.status_code == 500, r.text
        assert r.json()["error"] == "inference failed: RuntimeError: CUDA error: device lost"
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["last_error"] == "RuntimeError: CUDA error: device lost"
        again = client.post("/solve", params={"id": task.id}, json=task.to_json())
        assert again.status_code == 200 and len(again.json()["attempts"]) == len(task.test), again.text
        metrics = client.get("/metrics").text
    assert 'hrm_edge_requests_total{code="500"} 1' in metrics and 'hrm_edge_requests_total{code="200"} 1' in metrics
    assert len(calls) > 1
