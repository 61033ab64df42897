"""The HTTP app (Starlette on uvicorn): POST /solve, GET /health, GET /metrics.

- POST /solve[?id=TASK_ID]: the body is an ARC task, the same JSON as a task file; the answer holds the
  attempts per test input (the submission entry), and per test input its candidates, votes and the
  segments each augmented copy ran, plus timings. `id` names the task as a file name would: it picks
  the task's puzzle-table rows and seeds its augmentations, so the answer equals `hrm-edge solve` on
  a file of that name.
- GET /health: 200 {"status": "ok", ...} while serving (no token needed: it says nothing about tasks).
- GET /metrics: Prometheus text (serve/metrics.py).
Refusals are one JSON line {"error": reason} with a 4xx/5xx status: 400 not JSON / bad id, 401 missing
or wrong bearer token, 413 body over --max-body or a task bigger than the queue, 422 malformed task or
a grid over the model's canvas, 503 + Retry-After when the queue is full, 504 past --timeout. A bad
request is refused on the event loop before anything is queued, so it never disturbs the others.

`run_server` binds the socket itself (port 0 picks a free one, printed), and turns uvicorn's
SIGTERM handling into a clean exit 0: uvicorn stops accepting, lets in-flight requests finish (their
puzzles drain through the scheduler), runs the lifespan shutdown (the worker thread ends), and then
re-raises the signal to the handler it found, which here does nothing.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from hrm_edge.errors import MissingDependencyError
from hrm_edge.serve.metrics import render
from hrm_edge.serve.service import RequestError, Service

TOKEN_ENV = "HRM_EDGE_SERVE_TOKEN"
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: the largest ARC task file is ~100 KB


def _starlette() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"serve needs the `serve` extra: pip install 'hrm-edge[serve]' ({exc})") from None


def create_app(service: Service, *, token: str | None = None, max_body: int = DEFAULT_MAX_BODY) -> Any:
    """The ASGI app over a started-or-not service; the lifespan starts and stops it."""
    _starlette()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"error": reason}, status_code=status, headers=headers)

    def authorized(request: Request) -> bool:
        if not token:
            return True
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise RequestError(413, f"body of {declared} bytes is over the limit of {max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise RequestError(413, f"body is over the limit of {max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def solve(request: Request) -> Response:
        try:
            if not authorized(request):
                raise RequestError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                                   {"WWW-Authenticate": "Bearer"})
            body = await read_body(request)
            try:
                obj = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise RequestError(400, f"body is not JSON: {str(exc).splitlines()[0][:120]}") from None
            answer = await service.solve(request.query_params.get("id", "task"), obj)
        except RequestError as exc:
            service.metrics.count(exc.status)
            return refuse(exc.status, exc.reason, exc.headers)
        service.metrics.count(200)
        return JSONResponse(answer)

    async def health(request: Request) -> Response:
        o = service.options
        return JSONResponse({"status": "ok" if service.fatal is None else "degraded", "runtime": service.runtime.kind,
                             "model": service.runtime.artifact.name, "canvas": service.canvas,
                             "schedule": o.schedule, "slots": o.slots, "halt": o.halt, "augment": o.augment,
                             "attempts": o.attempts, "seed": o.seed, "queue": service.waiting, "busy": service.busy,
                             "last_error": service.fatal})

    async def metrics(request: Request) -> Response:
        if not authorized(request):
            return refuse(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                          {"WWW-Authenticate": "Bearer"})
        return PlainTextResponse(render(service), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if service.scheduler is None:
            service.start()
        try:
            yield
        finally:
            service.stop()

    return Starlette(routes=[Route("/solve", solve, methods=["POST"]), Route("/health", health, methods=["GET"]),
                             Route("/metrics", metrics, methods=["GET"])], lifespan=lifespan)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (IPv4 or IPv6 by the host's form); port 0 takes a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from hrm_edge.errors import HrmEdgeError

        raise HrmEdgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_server(service: Service, sock: socket.socket, *, token: str | None = None, max_body: int = DEFAULT_MAX_BODY,
               say: Callable[[str], None] | None = None, log_level: str = "warning") -> None:
    """Serve until SIGTERM / SIGINT; returns normally after a graceful drain (SIGINT raises KeyboardInterrupt
    afterwards, as Python's own handler does)."""
    _starlette()
    import uvicorn

    app = create_app(service, token=token, max_body=max_body)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=None)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    (say or (lambda s: print(s, file=sys.stderr, flush=True)))(f"serving on http://{shown}:{port} (pid {os.getpid()})")
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises SIGTERM here after draining
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
