"""Every command signature the README shows matches the CLI's own parameters (issue 20, item 7).

Read generically, so sections other work adds are checked too: each `### \\`hrm-edge CMD ...\\`` heading and each
bare `hrm-edge CMD ...` line in a code block (with its indented continuation lines) is a signature. For each:
the command exists; every `--option` it names is one of the command's; every required option and argument of
the command appears; and where it lists a choice (`--halt max|adaptive|batch-mean`), the list is exactly the
values the command accepts, when the command's checks name them (commands/options.py and the commands' own).
"""

from __future__ import annotations

import re

import pytest
import typer
from conftest import ROOT

from hrm_edge.cli import app
from hrm_edge.commands import options as opt
from hrm_edge.commands import serve as serve_cmd

HEADING = re.compile(r"^#{2,4} `(hrm-edge [a-z][^`]*)`\s*$")
OPTION = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")
CHOICE = re.compile(r"(--[a-z0-9][a-z0-9-]*)[ =]([A-Za-z0-9.+_-]+(?:\|[A-Za-z0-9.+_-]+)+)")

# the values each choice option accepts, by the checks the commands run (per command where it differs)
CHOICES = {"--act": opt.ACT_MODES, "--precision": opt.PRECISIONS, "--target": opt.TARGETS, "--halt": opt.HALT_MODES,
           "--runtime": opt.RUNTIMES, "--puzzle-dtype": opt.PUZZLE_DTYPES, "--format": ("hrm-edge", "lite-script")}
PER_COMMAND = {("serve", "--halt"): serve_cmd.SERVE_HALT, ("serve", "--schedule"): serve_cmd.SCHEDULES}


def signatures(text: str) -> list[str]:
    found, fence, lines = [], False, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
            continue
        m = HEADING.match(line)
        if m:
            found.append(m.group(1))
        elif fence and line.startswith("hrm-edge ") and re.match(r"hrm-edge [a-z]", line):
            sig, j = line, i + 1
            while j < len(lines) and re.match(r"\s+[\[(]", lines[j]):
                sig += " " + lines[j].strip()
                j += 1
            found.append(sig)
    return found


def _commands() -> dict:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


README_SIGNATURES = signatures((ROOT / "README.md").read_text())


def test_the_readme_has_signatures_to_check() -> None:
    assert len(README_SIGNATURES) >= 9
    assert {s.split()[1] for s in README_SIGNATURES} >= {"info", "init", "export", "solve", "compare", "bench",
                                                        "train", "serve"}


@pytest.mark.parametrize("sig", README_SIGNATURES, ids=lambda s: " ".join(s.split()[:2]))
def test_readme_signature_matches_the_cli(sig: str) -> None:
    name = sig.split()[1]
    commands = _commands()
    assert name in commands, f"README shows `hrm-edge {name}`, which is no command"
    cmd = commands[name]
    known = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", []))}
    rest = sig.split(None, 2)[2] if len(sig.split()) > 2 else ""
    rest = re.split(r"\s(?:&&|\|\||;|#)\s", rest)[0]  # one command: not the next one of a chain, nor a comment
    shown = set(OPTION.findall(rest))
    assert shown <= known, f"{name}: README names {sorted(shown - known)}, not options of the command"
    for p in cmd.params:
        if not p.required:
            continue
        if p.param_type_name == "option":
            assert set(p.opts) & shown, f"{name}: required {p.opts[0]} missing from the README signature"
        elif re.search(r"[\[(]", rest):  # a signature (optional parts shown): its arguments by name
            word = (p.metavar or p.name or "").upper()
            assert re.search(rf"\b{re.escape(word)}\b", rest), f"{name}: argument {word} missing from the signature"
    for flag, listed in CHOICE.findall(rest):
        want = PER_COMMAND.get((name, flag), CHOICES.get(flag))
        if want is not None:
            assert sorted(listed.split("|")) == sorted(want), (
                f"{name}: README lists {flag} {listed}, the command accepts {'|'.join(want)}")


def test_the_signature_reader_catches_drift() -> None:
    """The checks above fail on a stale signature (so a README edit cannot silently pass)."""
    text = "### `hrm-edge solve TASKS --ckpt C [--halt max|adaptive] [--bogus]`\n"
    (sig,) = signatures(text)
    with pytest.raises(AssertionError, match="bogus"):
        test_readme_signature_matches_the_cli(sig)
    with pytest.raises(AssertionError, match=re.escape("accepts max|adaptive|batch-mean")):
        test_readme_signature_matches_the_cli("hrm-edge solve TASKS [--halt max|adaptive]")
    with pytest.raises(AssertionError, match="required --preset"):
        test_readme_signature_matches_the_cli("hrm-edge init --out FILE")
