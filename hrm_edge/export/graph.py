"""Who produces and who reads each tensor of an ONNX graph: the map every graph rewrite starts from."""

from __future__ import annotations

from collections import defaultdict

import onnx


def links(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]]]:
    """(producer of each tensor, consumers of each tensor) over the graph's own nodes (not its subgraphs)."""
    producer: dict[str, onnx.NodeProto] = {}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in graph.node:
        for o in n.output:
            producer[o] = n
        for i in n.input:
            consumers[i].append(n)
    return producer, consumers


__all__ = ["links"]
