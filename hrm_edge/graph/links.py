"""Who produces and who reads each tensor of an ONNX graph, and what is still needed: shared by every graph
rewrite (export, parity instrumentation, the ORT-only fusions). No torch here: the ORT runner imports it."""

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


def subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Every tensor name a node reads, including outer-scope names read inside its subgraphs."""
    names = {i for i in node.input if i}
    for a in node.attribute:
        for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            local = {i.name for i in sg.input} | {t.name for t in sg.initializer}
            for n in sg.node:
                local.update(n.output)
            for n in sg.node:
                names.update(x for x in subgraph_inputs(n) if x not in local)
            names.update(o.name for o in sg.output if o.name not in local)
    return names


def prune(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers nothing downstream of the outputs needs."""
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(subgraph_inputs(node))
    live.reverse()
    del graph.node[:]
    graph.node.extend(live)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


__all__ = ["links", "prune", "subgraph_inputs"]
