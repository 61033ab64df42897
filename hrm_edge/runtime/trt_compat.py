"""Every difference between TensorRT 8.5 (JetPack 5), 8.6 (JetPack 6.0) and 10.x (JetPack 6.1/6.2), in one place.

The rest of hrm-edge calls these helpers and never branches on the TensorRT version itself. What
differs, and what this module does about it:

- network creation: 8.x needs the EXPLICIT_BATCH flag; 10.x is always explicit batch (flag deprecated).
- building: `build_engine` and `max_workspace_size` are gone in 10.x; `build_serialized_network` and
  `set_memory_pool_limit(WORKSPACE, ...)` exist in all three, so only those are used.
- builder optimization level: a config property from 8.6; 8.5 has none (the level is then reported
  as not applied).
- parser errors: 10.x names the failing node (`node_name()`, `node_operator()`); 8.x only gives its
  index (`node()`), which is mapped back to the ONNX node's name here.
- I/O: the name-based API (`num_io_tensors`, `get_tensor_name`, `get_tensor_mode`, `set_input_shape`,
  `set_tensor_address`, `execute_async_v3`) exists from 8.5, so the binding-index API (removed in 10) is
  never used.
"""

from __future__ import annotations

from typing import Any


def version_tuple(trt: Any) -> tuple[int, int]:
    """(major, minor) of the imported TensorRT, e.g. (8, 5) for "8.5.2.2"."""
    parts = str(trt.__version__).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def network_flags(trt: Any) -> int:
    """Flags for `Builder.create_network`: explicit batch (required in 8.x, implied in 10.x)."""
    if version_tuple(trt) >= (10, 0):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def set_workspace(trt: Any, config: Any, nbytes: int) -> None:
    """Builder scratch memory limit (the one call present in 8.5, 8.6 and 10.x)."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))


def set_builder_level(trt: Any, config: Any, level: int) -> bool:
    """Set the builder optimization level (0-5); False where this TensorRT has none (8.5)."""
    if version_tuple(trt) < (8, 6):
        return False
    config.builder_optimization_level = int(level)
    return True


def build_plan(builder: Any, network: Any, config: Any) -> bytes | None:
    """Build and serialize the engine; None when TensorRT reports failure (its log says why)."""
    plan = builder.build_serialized_network(network, config)
    return None if plan is None else bytes(memoryview(plan))


def parser_errors(parser: Any, trt: Any, node_names: list[str]) -> list[str]:
    """The ONNX parser's errors, each naming the node (and operator) it failed on."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        if version_tuple(trt) >= (10, 0):
            name, op = err.node_name(), err.node_operator()
        else:
            idx = err.node()
            name = node_names[idx] if 0 <= idx < len(node_names) else f"#{idx}"
            op = ""
        where = f"node {name}" + (f" ({op})" if op else "") if name else "graph"
        out.append(f"{where}: {err.desc()}")
    return out


def io_tensors(trt: Any, engine: Any) -> tuple[list[str], list[str]]:
    """Input and output tensor names of an engine, in engine order."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    return inputs, [n for n in names if n not in inputs]
