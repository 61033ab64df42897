"""`--help` is part of the product: every command's help is walked and read like a user would.

It must show no value placeholder on flags (`--json <bool>`), no type placeholders (`<int>`, `<path>`,
`<int range>`, `{CKPT}` in usage lines), no Python types (`list[str]`,
`Path`, `NoneType`), the defaults of the export options a profile may override, the `tasks` exit
rule, and a top-level summary that promises only commands that exist. The restated option choices
(commands/options.py, there so that help and checks need no torch import) must equal the tuples
the code acts on.
"""

from __future__ import annotations

import re

import pytest
from conftest import run_inprocess

from hrm_edge.cli import app

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None)
LEAKS = re.compile(r"<bool>|list\[|\bPath\b|NoneType|Optional\[|typing\.|<class |<(?:int|float|str|path|text)"
                   r"(?: range)?>|Usage: .*\{[A-Za-z_]+\}|<[a-z]+>\.\.\.")  # issue 20: <int>, {CKPT}, <path>...


def _help(*argv: str) -> str:
    r = run_inprocess(*argv, "--help")
    assert r.returncode == 0, r.stderr
    return r.stdout


def _flat(text: str) -> str:
    """Help text without the box drawing and line breaks, for phrases that wrap."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_every_help_is_free_of_placeholders_and_python_types() -> None:
    assert {"build-data", "bench", "compare", "export", "info", "init", "solve", "tasks", "verify"} <= set(COMMANDS)
    for argv in [[], *([c] for c in COMMANDS)]:
        text = _help(*argv)
        leak = LEAKS.search(text)
        assert leak is None, (argv, leak.group(0) if leak else None, text)
        for line in text.splitlines():  # a flag's row names no value type at all
            if re.search(r"--(json|force|help|version|overwrite|strict|quiet|ids|verbose)\b", line):
                assert not re.search(r"--[a-z-]+\s+<", line), (argv, line)


def test_top_level_help_lists_exactly_the_commands_that_exist() -> None:
    text = _help()
    listed = re.findall(r"^│ ([a-z][a-z-]+)\s{2,}", text, flags=re.M)
    assert sorted(listed) == COMMANDS, text
    summary = _flat(text.split("Options")[0])
    for word in re.findall(r"\b(build-engine|train|engines?)\b", summary):
        assert word.replace("engines", "build-engine").replace("engine", "build-engine") in COMMANDS, summary


@pytest.mark.parametrize("option, default", [("--act", "Default: step."), ("--precision", "Default: fp32."),
                                             ("--halt", "Default: max."), ("--target", "Default: trt-8.5"),
                                             ("--opset", "Default: 17"), ("--l4-puzzles", "Default: 4."),
                                             ("--batch", "Default: dynamic."), ("--puzzle-dtype", "[default: fp16]")])
def test_export_help_shows_defaults(option: str, default: str) -> None:
    text = _help("export")
    rows = _flat(text)
    start = rows.index(option + " ")
    nxt = re.search(r" --[a-z]", rows[start + len(option):])
    assert default in rows[start: start + len(option) + (nxt.start() if nxt else len(rows))], (option, rows)


def test_thread_and_choice_help_states_defaults() -> None:
    for cmd in ("solve", "compare", "bench", "serve"):
        text = _flat(_help(cmd))
        assert "Default: one per CPU core, waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE" \
            in text, cmd
    assert "Exit code: 0 when every task is valid; 2 when any task is invalid" in _flat(_help("tasks"))


def test_restated_choices_equal_the_code_that_acts_on_them() -> None:
    from hrm_edge.commands import options
    from hrm_edge.export import DEFAULT_L4_PUZZLES
    from hrm_edge.export.onnx import ACT_MODES, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
    from hrm_edge.export.precision import PRECISIONS
    from hrm_edge.export.trt_ops import TARGETS
    from hrm_edge.model.act import HALT_MODES
    from hrm_edge.runtime.scheduler import SCHEDULES
    from hrm_edge.solve.runners import RUNTIMES

    assert options.ACT_MODES == ACT_MODES and options.PRECISIONS == PRECISIONS and options.TARGETS == TARGETS
    assert options.HALT_MODES == HALT_MODES and options.RUNTIMES == RUNTIMES
    assert options.SCHEDULES == SCHEDULES
    assert options.OPSET_RANGE == (MIN_OPSET, MAX_OPSET)
    text = _flat(_help("export"))
    assert f"Default: {DEFAULT_OPSET}" in text and f"Default: {DEFAULT_L4_PUZZLES}." in text


def test_issue20_help_drift() -> None:
    """init names every preset; the named sets read the same in help and in the error; verify --ckpt says it
    is the bundle's own checkpoint; a range error echoes the bad value."""
    from hrm_edge.config import PRESETS
    from hrm_edge.data.arc import NAMED_SETS_TEXT

    init = _flat(_help("init"))
    assert all(name in init for name in PRESETS), init
    assert NAMED_SETS_TEXT in _flat(_help("solve"))
    r = run_inprocess("tasks", "arc-agi-9/evaluation")
    assert r.returncode == 2 and f"named sets: {NAMED_SETS_TEXT}" in r.stderr, r.stderr
    assert "its sha256 must equal the manifest's" in _flat(_help("verify"))
    r = run_inprocess("solve", "t.json", "--ckpt", "x.pt", "--batch", "0")
    assert r.returncode == 2 and "(got 0)" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
