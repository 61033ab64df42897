"""The real TensorRT Python bindings on a machine without TensorRT: wheels, stub libraries, a subprocess.

PyPI serves the bindings alone as ~1 MB wheels (`tensorrt-cu12-bindings==11.4.0.106` for JetPack
7.2.2+, `tensorrt-cu12-bindings==10.3.0` for JetPack 6.1/6.2, `tensorrt-bindings==8.6.1` close to JetPack
6.0's 8.6.2). Their `tensorrt.so` links against libnvinfer,
libnvonnxparser, libnvinfer_plugin (and libnvparsers for 8.6) but imports only a handful of C functions
from them. Stub libraries defining those functions (returning null) are compiled here with the system C
compiler, so `import tensorrt_bindings` works: every class, enum, method and signature docstring of the
real API is there, while creating a Builder raises and nothing executes. This is API conformance, not
execution.

The wheels are downloaded once (`pip download --no-deps`) into ~/.cache/hrm-edge/trt-wheels (or
$HRM_EDGE_TRT_CACHE). `prepare(version)` returns the paths, or a reason to skip: no network to fetch the
wheel, or no C compiler. Nothing else is a reason to skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEELS = {"11.4": ("tensorrt-cu12-bindings", "11.4.0.106"), "10.3": ("tensorrt-cu12-bindings", "10.3.0"),
          "8.6": ("tensorrt-bindings", "8.6.1")}
# What `nm -D --undefined-only tensorrt.so` lists from TensorRT's libraries (used when nm is absent).
_TRT10_SYMBOLS = ["createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
                  "createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getBuilderPluginRegistry",
                  "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins"]
KNOWN_SYMBOLS = {
    "11.4": _TRT10_SYMBOLS,  # 11.4 imports the same nine functions, from libraries named .so.11
    "10.3": ["createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
             "createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getBuilderPluginRegistry",
             "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins"],
    "8.6": ["createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
            "createNvOnnxParser_INTERNAL", "getBuilderPluginRegistry", "getNvOnnxParserVersion",
            "getPluginRegistry", "initLibNvInferPlugins", "_ZN11nvuffparser15createUffParserEv",
            "_ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi", "_ZN14nvcaffeparser117createCaffeParserEv",
            "_ZN14nvcaffeparser123shutdownProtobufLibraryEv"],
}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class RealTrt:
    version: str  # "11.4" | "10.3" | "8.6"
    site: Path  # folder holding the `tensorrt_bindings` package
    stubs: Path  # folder holding the stub libnv*.so.N

    def run(self, script: str, *args: str, timeout: int = 300) -> dict:
        """Run tests/<script> with these bindings importable; it prints one JSON object last."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.site), str(REPO)]),
                   LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(self.stubs), os.environ.get("LD_LIBRARY_PATH")])))
        p = subprocess.run([sys.executable, str(REPO / "tests" / script), *args], capture_output=True, text=True,
                           env=env, timeout=timeout, cwd=str(REPO))
        if p.returncode != 0:
            raise AssertionError(f"{script} failed under TensorRT {self.version} (rc {p.returncode}):\n"
                                 f"{p.stdout[-4000:]}\n{p.stderr[-6000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])


def cache_dir() -> Path:
    return Path(os.environ.get("HRM_EDGE_TRT_CACHE", Path.home() / ".cache" / "hrm-edge" / "trt-wheels"))


def _download(name: str, version: str, dest: Path) -> Path | str:
    """The wheel for this interpreter, downloaded once; a string is the reason it cannot be had."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    norm = name.replace("-", "_")
    found = sorted(dest.glob(f"{norm}-{version}-{tag}-*.whl"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), f"{name}=={version}"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot download {name}=={version} from PyPI ({exc})"
    found = sorted(dest.glob(f"{norm}-{version}-{tag}-*.whl"))
    if p.returncode != 0 or not found:
        last = (p.stderr.strip().splitlines() or ["no wheel for this Python"])[-1]
        return f"cannot download {name}=={version} for {tag} from PyPI (no network?): {last[:200]}"
    return found[0]


def _undefined_symbols(so: Path, version: str) -> list[str]:
    """Functions tensorrt.so expects from TensorRT's own libraries (unversioned, non-Python undefined symbols)."""
    if shutil.which("nm") is None:
        return KNOWN_SYMBOLS[version]
    out = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] \
                and not parts[1].startswith(("Py", "_Py", "dl", "pthread")):  # 11.x also lists libc's dlopen & co.
            syms.append(parts[1])
    return sorted(set(syms))


def _needed(so: Path, version: str) -> list[str]:
    """The libnv* sonames tensorrt.so links against (from the ELF dynamic section)."""
    if shutil.which("readelf"):
        out = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
        return sorted({w.strip("[]") for w in out.split() if w.startswith("[libnv")})
    major = version.split(".")[0]
    return [f"lib{n}.so.{major}" for n in ("nvinfer", "nvonnxparser", "nvinfer_plugin")] + \
        (["libnvparsers.so.8"] if major == "8" else [])


VERSIONS = ["11.4", "10.3", "8.6"]  # every binding the TensorRT code is checked against


def require(version: str) -> RealTrt:
    """`prepare(version)`, or skip the calling test with the reason it cannot run here."""
    import pytest

    got = prepare(version)
    if isinstance(got, str):
        pytest.skip(got)
    return got


def prepare(version: str) -> RealTrt | str:
    """Wheel unpacked and stubs compiled for `version`; a string is the reason to skip."""
    name, full = WHEELS[version]
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return "no C compiler (cc/gcc/clang) to build the stub TensorRT libraries"
    root = cache_dir()
    wheel = _download(name, full, root)
    if isinstance(wheel, str):
        return wheel
    site = root / wheel.stem
    so = site / "tensorrt_bindings" / "tensorrt.so"
    if not so.is_file():
        tmp = root / (wheel.stem + f".tmp{os.getpid()}")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        shutil.rmtree(site, ignore_errors=True)
        tmp.rename(site)
    stubs = root / (wheel.stem + "-stubs")
    needed = _needed(so, version)
    if not all((stubs / lib).is_file() for lib in needed):
        stubs.mkdir(parents=True, exist_ok=True)
        src = stubs / "stub.c"
        src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in _undefined_symbols(so, version)))
        for lib in needed:
            subprocess.run([cc, "-shared", "-fPIC", "-o", str(stubs / lib), str(src), f"-Wl,-soname,{lib}"],
                           check=True, capture_output=True)
    return RealTrt(version, site, stubs)
