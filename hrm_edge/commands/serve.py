"""`hrm-edge serve`: the puzzle service over HTTP (serve/app.py), one model shared by every request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from hrm_edge.commands.consoles import say
from hrm_edge.commands.options import THREADS_HELP, check_choice, check_device
from hrm_edge.errors import HrmEdgeError

SERVE_HALT = ("max", "adaptive")  # restates serve.service.SERVE_HALT_MODES (no import before the checks)
SCHEDULES = ("static", "continuous")  # restates runtime.scheduler.SCHEDULES
TOKEN_ENV = "HRM_EDGE_SERVE_TOKEN"  # restates serve.app.TOKEN_ENV
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Checkpoint (torch runtime)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Export bundle folder (onnxruntime runtime)."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="TensorRT engine file (tensorrt runtime)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Default: loopback only; anything "
                             "wider should set a token."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port (0: a free one, printed)."),
    slots: int = typer.Option(8, "--slots", min=1, help="Puzzles in flight at once (the batch width)."),
    schedule: str = typer.Option("continuous", "--schedule", metavar="KIND", help="continuous (halted slots take "
                                 "the next puzzle after every segment) or static (whole batches)."),
    halt: str = typer.Option("max", "--halt", metavar="MODE", help="ACT halting: max (every segment) or adaptive "
                             "(per puzzle; where continuous batching pays)."),
    augment: int = typer.Option(8, "--augment", min=1, help="Augmented copies per test input (identity first)."),
    attempts: int = typer.Option(2, "--attempts", min=1, help="Attempts per test input in the answer."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random augmentations (per task), as solve's."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Puzzles allowed to wait for a slot; a request "
                                  "that would pass it gets 503 with Retry-After."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds a request may take before it is answered 504."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1, help="Largest request body in bytes (413 above)."),
    token: Optional[str] = typer.Option(None, "--token", help=f"Bearer token required on /solve and /metrics. "
                                        f"Default: ${TOKEN_ENV} when set, else none."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="torch device: cpu, cuda or "
                                         "cuda:N (checkpoints); onnxruntime provider (bundles)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    identifiers: Optional[Path] = typer.Option(None, "--identifiers", help="Puzzle identifier index if not found "
                                               "beside the artifact or in the bundle."),
) -> None:
    """Serve puzzles over HTTP: POST /solve (an ARC task), GET /health, GET /metrics (Prometheus)."""
    check_choice("--halt", halt, SERVE_HALT)
    check_choice("--schedule", schedule, SCHEDULES)
    if ckpt is not None:
        check_device("--device", device)
    if not timeout > 0:
        raise HrmEdgeError(f"--timeout must be > 0 seconds, got {timeout}")
    token = token or os.environ.get(TOKEN_ENV) or None
    if host not in LOOPBACK and not token:
        say(f"warning: listening on {host} without a token: anyone who can reach it can use the model "
            f"(--token or ${TOKEN_ENV})")

    from hrm_edge.serve.app import bind, run_server
    from hrm_edge.serve.service import ServeOptions, Service
    from hrm_edge.solve.runners import artifact_option, infer_runtime, open_runtime

    options = ServeOptions(slots=slots, halt=halt, schedule=schedule, augment=augment, attempts=attempts, seed=seed,
                           max_queue=max_queue, timeout=timeout)
    options.check()
    from hrm_edge.runtime.bundle_check import check_bundles
    check_bundles([bundle] if bundle else [])
    kind = infer_runtime(ckpt, bundle, engine)
    rt = open_runtime(kind, artifact_option(kind, ckpt, bundle, engine), device=device, identifiers=identifiers,
                      threads=threads)
    sock = bind(host, port)
    service = Service(rt, options)
    try:
        service.start()  # the model loads before the address is announced
        say(f"{rt.label}: {schedule} batching, {slots} slots, halt {halt}, augment {augment}"
            + (", bearer token required" if token else ""))
        run_server(service, sock, token=token, max_body=max_body, say=say)
    finally:
        service.stop()
        sock.close()
    say("stopped: every admitted request was answered")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


__all__ = ["register", "serve"]
