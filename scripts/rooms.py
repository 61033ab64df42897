"""The rooms of hrm_edge by floor, read from the code's imports; the picture at the top of ARCHITECTURE.md.

    python scripts/rooms.py            # print the picture
    python scripts/rooms.py --write    # put it into ARCHITECTURE.md (between the rooms markers)
    python scripts/rooms.py --check    # exit 1 if ARCHITECTURE.md's picture is not the code's

A *room* is a top-level module or package of hrm_edge (`data`, `runtime`, `errors`, ...). FLOORS is the
declared order, lowest first: a module may import its own room and rooms on lower floors, never a room on
its own floor or above. tests/test_import_layers.py checks every import of every module against it (and
that no modules import each other in a circle) and that the picture here is the one in ARCHITECTURE.md.

Every import counts, wherever it stands (module top, inside a function, under TYPE_CHECKING): a lazy
import is still a dependency. `from pkg import name` depends on the package face `pkg/__init__.py` (it
runs to hand `name` over) and, where `name` is a submodule, on that submodule too.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "hrm_edge"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
BEGIN, END = "<!-- rooms:begin (scripts/rooms.py --write) -->", "<!-- rooms:end -->"

#: lowest floor first; rooms on one floor do not import each other
FLOORS: tuple[tuple[str, ...], ...] = (
    ("hrm_edge", "errors", "fileio", "interrupt", "config"),  # `hrm_edge` is the package face (__version__)
    ("data", "model"),
    ("graph",),
    ("runtime",),
    ("solve",),
    ("export",),
    ("bench",),
    ("train",),
    ("adapt",),
    ("serve", "demo"),
    ("commands",),
    ("cli",),
)
#: which floor a room may import from within its own floor: the bottom floor's rooms are one-file utilities
#: that build on each other in this order (errors first), so they are listed by rank here
BOTTOM_ORDER = ("hrm_edge", "errors", "fileio", "interrupt", "config")


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. hrm_edge.solve.solver
    imported: str  # module name
    line: int

    def __str__(self) -> str:
        return f"{module_path(self.importer)}:{self.line} imports {self.imported}"


def module_path(module: str) -> str:
    """The file of a module, relative to the repository root."""
    rel = Path(*module.split("."))
    return str(rel / "__init__.py") if (ROOT / rel).is_dir() else str(rel) + ".py"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package's face is the package's name)."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """The package's own modules that `module` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                pkg = _package_of(module, path).split(".")
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            yield Import(module, base, node.lineno)  # the module itself, or the package face that hands names on
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield Import(module, sub, node.lineno)


def all_imports(root: Path = ROOT) -> list[Import]:
    known = modules(root)
    return [imp for mod, path in known.items() for imp in imports_of(mod, path, known) if imp.imported != mod]


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor_of(room: str) -> int:
    for i, floor in enumerate(FLOORS):
        if room in floor:
            return i
    raise KeyError(f"room {room!r} is not on any floor: add it to FLOORS in scripts/rooms.py")


def rank(room: str) -> tuple[int, int]:
    """Order of rooms: floor, then (bottom floor only) the utilities' own order."""
    f = floor_of(room)
    return (f, BOTTOM_ORDER.index(room) if f == 0 else 0)


def upward(imports: list[Import]) -> list[Import]:
    """Imports that go against the declared order: to another room on the same floor or above."""
    bad = []
    for imp in imports:
        a, b = room_of(imp.importer), room_of(imp.imported)
        if a == b:
            continue
        ra, rb = rank(a), rank(b)
        if rb[0] > ra[0] or (rb[0] == ra[0] and (ra[0] != 0 or rb[1] >= ra[1])):
            bad.append(imp)
    return bad


def cycles(imports: list[Import]) -> list[list[str]]:
    """Circles of modules importing each other (strongly connected components of more than one module)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # Tarjan, recursive: the graph has ~100 nodes
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def room_edges(imports: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports:
        a, b = room_of(imp.importer), room_of(imp.imported)
        if a != b:
            edges.setdefault(a, set()).add(b)
    return edges


def picture(root: Path = ROOT) -> str:
    """The rooms by floor, top floor first; each room with the rooms it imports (lower floors only)."""
    known = modules(root)
    imports = all_imports(root)
    edges = room_edges(imports)
    count: dict[str, int] = {}
    for mod in known:
        count[room_of(mod)] = count.get(room_of(mod), 0) + 1
    width = max(len(r) for floor in FLOORS for r in floor)
    lines = ["floor  room" + " " * (width - 4) + "  modules  imports (rooms below it)"]
    for i in range(len(FLOORS) - 1, -1, -1):
        for room in FLOORS[i]:
            n = count.get(room, 0)
            deps = sorted(edges.get(room, ()), key=lambda r: (-rank(r)[0], rank(r)[1], r))
            what = ", ".join(deps) if n else "(planned: no code yet)"
            lines.append(f"{i:>5}  {room:<{width}}  {n:>7}  {what}".rstrip())
    return "\n".join(lines)


def block(root: Path = ROOT) -> str:
    return f"{BEGIN}\n```\n{picture(root)}\n```\n{END}"


def replace_block(text: str, new: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{ARCHITECTURE}: no rooms markers ({BEGIN} ... {END})")
    return text[:start] + new + text[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update ARCHITECTURE.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if ARCHITECTURE.md's picture is stale")
    args = ap.parse_args(argv)
    if not (args.write or args.check):
        print(picture())
        return 0
    text = ARCHITECTURE.read_text()
    new = replace_block(text, block())
    if args.check:
        if new != text:
            print(f"{ARCHITECTURE.name}: the rooms picture is stale; run python scripts/rooms.py --write",
                  file=sys.stderr)
            return 1
        return 0
    ARCHITECTURE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
