"""The rooms by floor (scripts/rooms.py FLOORS): no module imports a room on its own floor or above, no modules
import each other in a circle (package faces included), package faces only hand names on, and the picture at
the top of ARCHITECTURE.md is the one the code gives.

Every import counts, wherever it stands (module top, function body, TYPE_CHECKING block): a lazy import is
still a climb. The checker itself is tested on a small made-up package, so a checker that finds nothing
cannot pass for a clean tree.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_rooms():  # scripts/ is not a package: load the generator by path
    spec = importlib.util.spec_from_file_location("hrm_edge_rooms", ROOT / "scripts" / "rooms.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(mod)
    return mod


rooms = _load_rooms()

#: circles known and owned elsewhere; each entry says when it goes
KNOWN_CYCLES: list[list[str]] = []  # none left; an entry needs a comment saying why and when it goes

#: package faces that still do work of their own; each entry needs a comment saying why and when it goes
FACES_WITH_CODE: set[str] = set()  # none left (model_class / build_model moved to model/families.py)


@pytest.fixture(scope="module")
def imports() -> list:
    return rooms.all_imports()


def test_every_room_is_on_a_floor() -> None:
    for module in rooms.modules():
        rooms.floor_of(rooms.room_of(module))  # raises for a room FLOORS does not place


def test_no_import_goes_against_the_floors(imports: list) -> None:
    bad = rooms.upward(imports)
    assert not bad, "imports against the declared floors (scripts/rooms.py FLOORS):\n" + "\n".join(map(str, bad))


def test_no_modules_import_each_other_in_a_circle(imports: list) -> None:
    found = rooms.cycles(imports)
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, "modules importing each other in a circle:\n" + "\n".join(" <-> ".join(c) for c in new)


def test_known_cycles_are_still_there(imports: list) -> None:
    """An exemption outlives its reason otherwise: once the circle is gone, delete its KNOWN_CYCLES entry."""
    found = rooms.cycles(imports)
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"no longer circular, remove from KNOWN_CYCLES: {gone}"


def _face_problems(path: Path) -> list[str]:
    """What a package face does besides handing names on: anything but a docstring, imports and __all__."""
    out = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"] \
                and path.parent.name == rooms.PACKAGE:
            continue  # the package's own version string
        out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {type(node).__name__}")
    return out


def test_package_faces_only_hand_names_on() -> None:
    problems = []
    for module, path in rooms.modules().items():
        if path.name == "__init__.py" and module not in FACES_WITH_CODE:
            problems += _face_problems(path)
    assert not problems, "package __init__.py files doing more than handing names on:\n" + "\n".join(problems)


def test_faces_with_code_are_still_faces_with_code() -> None:
    for module in FACES_WITH_CODE:
        assert _face_problems(rooms.modules()[module]), f"{module} only hands names on now: drop it from the list"


def test_architecture_picture_is_the_codes() -> None:
    text = rooms.ARCHITECTURE.read_text()
    assert rooms.block() in text, "ARCHITECTURE.md's rooms picture is stale: run python scripts/rooms.py --write"
    assert text.index(rooms.BEGIN) < text.index("\n## "), "the picture comes first in ARCHITECTURE.md"


# --------------------------------------------------------------------------------------------------
# the checker, on a made-up package
# --------------------------------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rooms.PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_checker_finds_climbs_lazy_and_type_only_ones_too(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "data/__init__.py": "",
        "data/arc.py": "from hrm_edge.errors import X\n",  # down: fine
        "runtime/__init__.py": "",
        "runtime/base.py": "def f():\n    from hrm_edge.solve.solver import plan\n",  # lazy climb
        "solve/__init__.py": "",
        "solve/solver.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hrm_edge.bench import t\n",
        "bench/__init__.py": "",
        "model/__init__.py": "",
        "model/hrm.py": "import hrm_edge.data.arc\n",  # same floor, other room: not allowed either
    })
    bad = {(i.importer, i.imported) for i in rooms.upward(rooms.all_imports(root))}
    assert bad == {("hrm_edge.runtime.base", "hrm_edge.solve.solver"), ("hrm_edge.solve.solver", "hrm_edge.bench"),
                   ("hrm_edge.model.hrm", "hrm_edge.data.arc")}


def test_checker_finds_circles_through_package_faces(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "__init__.py": "",
        "solve/__init__.py": "",
        "solve/solver.py": "def f():\n    from hrm_edge.solve.submission import build\n",
        "solve/submission.py": "from hrm_edge.solve.solver import Answer\n",
        # a face that re-exports, and a module of its package that takes a name through the face
        "export/__init__.py": "from hrm_edge.export.pipeline import export_model\n",
        "export/pipeline.py": "def export_model():\n    from hrm_edge.export.parity import run\n",
        "export/parity.py": "from hrm_edge.export import trt_ops\n",
        "export/trt_ops.py": "",
        # fine: siblings by full name, and a face handing names on
        "data/__init__.py": "from hrm_edge.data.arc import load\n",
        "data/arc.py": "from hrm_edge.data.tokens import encode\n",
        "data/tokens.py": "",
    })
    assert rooms.cycles(rooms.all_imports(root)) == [
        ["hrm_edge.export", "hrm_edge.export.parity", "hrm_edge.export.pipeline"],
        ["hrm_edge.solve.solver", "hrm_edge.solve.submission"],
    ]
