"""Jetson pieces that run on any CPU: tegrastats parsing and `bench --power`, L4T/JetPack facts, doctor,
build-engine's checks before TensorRT is needed, the fp32 layer choice for --fp16, Dockerfile.l4t and jetson/.

The tegrastats lines below are the formats those releases print (JetPack 5 on Xavier NX: no units;
JetPack 6 on Orin Nano and AGX Orin: a date, then `mW` values).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from _qdq_bundle import make_bundle

from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime import jetson_info
from hrm_edge.runtime.jetson_power import parse_rails, summarize, total_mw
from hrm_edge.runtime.trt_build import EngineOptions, check_bundle, fp32_node_names, qdq_count

REPO = Path(__file__).resolve().parents[1]

JP5_XAVIER_NX = ("RAM 3027/6854MB (lfb 220x4MB) SWAP 0/3427MB (cached 0MB) CPU [3%@1190,1%@1190,0%@1190,1%@1190,off,"
                 "off] EMC_FREQ 0% GR3D_FREQ 0% AUX@36C CPU@38C thermal@36.75C AO@35C GPU@36C PMIC@50C "
                 "VDD_IN 3867/3867 VDD_CPU_GPU_CV 489/489 VDD_SOC 1222/1222")
JP6_ORIN_NANO = ("11-14-2024 10:12:33 RAM 2136/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [0%@729,0%@729,"
                 "0%@729,0%@729,0%@729,0%@729] GR3D_FREQ 0% cpu@47.968C soc2@46.875C soc0@47.156C gpu@47.343C "
                 "tj@47.968C soc1@46.468C VDD_IN 4969mW/4969mW VDD_CPU_GPU_CV 563mW/563mW VDD_SOC 1486mW/1486mW")
JP6_AGX_ORIN = ("11-25-2026 14:00:01 RAM 5285/30536MB (lfb 6045x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,0%@729,"
                "0%@729,0%@729,off,off,off,off,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 "
                "APE 174 CV0@-256C CPU@43.875C Tboard@32C SOC2@40.281C Tdiode@34.75C SOC0@40.5C CV1@-256C "
                "GPU@-256C tj@43.875C SOC1@40.062C CV2@-256C VDD_GPU_SOC 2767mW/2767mW VDD_CPU_CV 395mW/395mW "
                "VIN_SYS_5V0 3731mW/3731mW VDDQ_VDD2_1V8AO 402mW/402mW")


@pytest.fixture(scope="module")
def tiny_step_bundle(tmp_path_factory) -> Path:
    from hrm_edge.config import preset
    from hrm_edge.export import export_model
    from hrm_edge.model import build_model

    out = tmp_path_factory.mktemp("act") / "tiny-step"
    export_model(build_model(preset("tiny"), seed=0), out, act="step", l4_puzzles=1)
    return out


@pytest.fixture(scope="module")
def tiny_lite_bundle(tmp_path_factory) -> Path:
    from hrm_edge.config import preset
    from hrm_edge.export import export_model
    from hrm_edge.model import build_model

    out = tmp_path_factory.mktemp("lite") / "lite-step"
    export_model(build_model(preset("tiny-lite"), seed=0), out, act="step", l4_puzzles=1)
    return out


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hrm_edge.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


# --------------------------------------------------------------------------------------------------
# tegrastats
# --------------------------------------------------------------------------------------------------
def test_tegrastats_rails_in_three_layouts() -> None:
    assert parse_rails(JP5_XAVIER_NX) == {"VDD_IN": 3867, "VDD_CPU_GPU_CV": 489, "VDD_SOC": 1222}
    assert parse_rails(JP6_ORIN_NANO) == {"VDD_IN": 4969, "VDD_CPU_GPU_CV": 563, "VDD_SOC": 1486}
    assert parse_rails(JP6_AGX_ORIN) == {"VDD_GPU_SOC": 2767, "VDD_CPU_CV": 395, "VIN_SYS_5V0": 3731,
                                         "VDDQ_VDD2_1V8AO": 402}
    assert total_mw(parse_rails(JP6_ORIN_NANO)) == 4969  # VDD_IN is the module input: not added to its parts
    assert total_mw(parse_rails(JP6_AGX_ORIN)) == 2767 + 395 + 3731 + 402


def test_current_not_running_average_and_energy_per_puzzle() -> None:
    lines = [JP6_ORIN_NANO, JP6_ORIN_NANO.replace("VDD_IN 4969mW/4969mW", "VDD_IN 7031mW/6000mW"), "garbage"]
    rep = summarize(lines, seconds=2.0, puzzles=10)
    assert rep.samples == 2 and rep.total_rule == "VDD_IN"
    assert rep.rails_mean_mw["VDD_IN"] == pytest.approx(6000.0)  # (4969 + 7031) / 2, currents
    assert rep.energy_mj == pytest.approx(12000.0) and rep.energy_per_puzzle_mj == pytest.approx(1200.0)
    with pytest.raises(HrmEdgeError, match="no power rails"):
        summarize(["RAM 1/2MB SWAP 0/1MB"], 1.0, 1)


def test_bench_power_without_tegrastats_is_one_line_exit_2(tmp_path, tiny_step_bundle) -> None:
    env = dict(os.environ, PATH=str(tmp_path), PYTHONPATH=str(REPO))
    p = cli("bench", "--bundle", str(tiny_step_bundle), "--power", "--out", str(tmp_path / "b.json"), env=env)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "tegrastats" in p.stderr
    assert not (tmp_path / "b.json").exists()


def test_bench_power_samples_tegrastats_during_the_run(tmp_path, tiny_step_bundle) -> None:
    """A stand-in `tegrastats` on PATH prints Orin Nano lines; bench records its rails and mJ per puzzle."""
    fake = tmp_path / "bin" / "tegrastats"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nwhile true; do echo '{JP6_ORIN_NANO}'; sleep 0.02; done\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO))
    out = tmp_path / "bench.json"
    p = cli("bench", "--bundle", str(tiny_step_bundle), "--puzzles", "4", "--batch", "2", "--power", "--threads",
            "1", "--out", str(out), env=env)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())["results"][0]
    pw = res["power"]
    assert pw["samples"] >= 1 and pw["rails_mean_mw"] == {"VDD_CPU_GPU_CV": 563.0, "VDD_IN": 4969.0,
                                                          "VDD_SOC": 1486.0}
    assert pw["energy_per_puzzle_mj"] == pytest.approx(4969.0 * pw["seconds"] / 4)
    assert "mJ/puzzle" in p.stdout


# --------------------------------------------------------------------------------------------------
# L4T / JetPack, nvpmodel, doctor
# --------------------------------------------------------------------------------------------------
def test_l4t_and_jetpack() -> None:
    assert jetson_info.parse_l4t("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic") == "36.4.3"
    assert jetson_info.jetpack_for("36.4.3") == "6.2"
    assert jetson_info.jetpack_for("36.4.0") == "6.1"
    assert jetson_info.jetpack_for("36.3.0") == "6.0"
    assert jetson_info.jetpack_for("35.4.1") == "5.1.2"
    assert jetson_info.parse_l4t("R35 (release), REVISION: 4.1, GCID: 33958178") == "35.4.1"
    assert jetson_info.parse_l4t("not a release line") is None
    # JetPack 7: r38 on Thor (7.0, 7.1), r39 on Orin and Thor (7.2); 7.2.2 and later ship TensorRT 11
    assert [jetson_info.jetpack_for(x) for x in ("38.2.1", "38.4.0", "39.2.0", "39.2.1", "39.2.2")] == \
        ["7.0", "7.1", "7.2", "7.2.1", "7.2.2"]
    trt = {jp: jetson_info.matrix_for(jp)["tensorrt"] for jp in ("5.1.2", "6.0", "6.2", "7.1", "7.2", "7.2.1", "7.2.2")}
    assert trt == {"5.1.2": "8.5.2", "6.0": "8.6.2", "6.2": "10.3", "7.1": "10.13", "7.2": "10.16", "7.2.1": "10.16",
                   "7.2.2": "11.4.1"}
    assert "strongly typed only" in jetson_info.matrix_for("7.2.2")["hrm_edge"]
    assert "no runner" in jetson_info.matrix_for("5.1.2")["hrm_edge"]
    assert jetson_info.parse_nvpmodel("NV Power Mode: 15W\n1\n") == "15W (1)"
    assert jetson_info.parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN_SUPER\n2") == "MAXN_SUPER (2)"


CLOCKS = REPO / "tests" / "fixtures" / "jetson_clocks"  # real outputs; sources in SOURCES.md there


@pytest.mark.parametrize("name,state", [("agx_orin_30w_dynamic", "off"), ("agx_orin_30w_pinned", "on"),
                                        ("orin_nano_super_maxn_pinned", "on"), ("orin_nano_super_25w_dynamic", "off"),
                                        ("orin_nano_15w_dynamic", "off")])
def test_jetson_clocks_state_from_real_orin_outputs(name, state) -> None:
    text = (CLOCKS / f"{name}.txt").read_text()
    assert jetson_info.parse_jetson_clocks(text) == state
    if state == "on":  # what the old reader (MinFreq == MaxFreq on every line) called "off"
        assert "FreqOverride=1" in text and "EMC MinFreq=204000000" in text


def test_jetson_clocks_unknown_and_partial_outputs() -> None:
    assert jetson_info.parse_jetson_clocks("Error: Run this script(/usr/bin/jetson_clocks) as a root user") is None
    pinned = (CLOCKS / "agx_orin_30w_pinned.txt").read_text()
    assert jetson_info.parse_jetson_clocks(pinned.replace("FreqOverride=1", "FreqOverride=0")) == "off"
    gpu_free = pinned.replace("GPU MinFreq=612000000", "GPU MinFreq=306000000")
    assert jetson_info.parse_jetson_clocks(gpu_free) == "off"
    one_cpu = pinned.replace("cpu7:  Online=1 Governor=schedutil MinFreq=1728000",
                             "cpu7:  Online=1 Governor=schedutil MinFreq=729600")
    assert jetson_info.parse_jetson_clocks(one_cpu) == "off"


def test_doctor_on_a_jetson_reads_clocks_release_and_matrix(tmp_path, monkeypatch, capsys) -> None:
    """`doctor --json` on a (stand-in) AGX Orin with JetPack 7.2.2: jetson_clocks pinned, the TensorRT its JetPack
    ships and the strongly-typed-only note, the board; the CLI path is the user's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, out in (("jetson_clocks", (CLOCKS / "agx_orin_30w_pinned.txt").read_text()),
                      ("nvpmodel", "NV Power Mode: MODE_30W\n2\n")):
        (bin_dir / tool).write_text(f"#!/bin/sh\ncat <<'EOF'\n{out}EOF\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(jetson_info, "l4t_release", lambda: "39.2.2")
    monkeypatch.setattr(jetson_info, "board_model", lambda: "NVIDIA Jetson AGX Orin Developer Kit")
    from hrm_edge import cli as cli_mod

    monkeypatch.setattr(sys, "argv", ["hrm-edge", "doctor", "--json"])
    try:
        cli_mod.main()
    except SystemExit as exc:
        assert not exc.code
    doc = json.loads(capsys.readouterr().out)
    assert doc["jetson"]["jetson_clocks"] == "on" and doc["jetson"]["nvpmodel"] == "MODE_30W (2)"
    rows = {r["name"]: r for r in doc["checks"]}
    assert rows["L4T / JetPack"]["detail"] == ("L4T 39.2.2 = JetPack 7.2.2 (TensorRT 11.4.1, Python 3.12: supported: "
                                               "strongly typed only (export --precision fp16 / int8-qdq))")
    assert rows["board"]["detail"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert [r["jetpack"] for r in doc["jetpack_matrix"]][-1] == "7.2.2+"
    # on a Jetson the CPU onnxruntime (no CUDA provider) is flagged with the fix
    assert rows["onnxruntime"]["status"] == "missing" and "onnxruntime-gpu" in rows["onnxruntime"]["fix"]


def test_doctor_spots_two_onnxruntimes_and_a_numpy_abi_break(monkeypatch) -> None:
    from types import SimpleNamespace

    from hrm_edge.runtime import doctor

    versions = {"onnxruntime": "1.23.0", "onnxruntime-gpu": "1.23.0"}
    monkeypatch.setattr(doctor, "_dist_version", versions.get)
    status, detail = doctor.onnxruntime_build()
    assert status == "missing" and "overwrote the GPU one's files" in detail
    versions.pop("onnxruntime")
    assert doctor.onnxruntime_build() == ("ok", "onnxruntime-gpu 1.23.0")

    def from_numpy(arr):
        raise RuntimeError("Numpy is not available")

    assert "torch cannot use numpy" in doctor.numpy_abi(SimpleNamespace(from_numpy=from_numpy))
    import torch

    assert doctor.numpy_abi(torch) is None


def test_doctor_json_names_each_missing_piece_with_its_install_command() -> None:
    p = cli("doctor", "--json", env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    rows = {r["name"]: r for r in doc["checks"]}
    want = {"python", "torch", "onnxruntime", "tensorrt", "pycuda", "CUDA driver", "L4T / JetPack", "memory"}
    assert want <= set(rows)
    assert rows["python"]["detail"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    for name in ("tensorrt", "pycuda"):
        have = __import__("importlib").util.find_spec(name) is not None
        assert (rows[name]["status"] == "ok") == have
        if not have:
            assert "pip install 'hrm-edge[" in rows[name]["fix"] or "apt install" in rows[name]["fix"]
    assert doc["can_run"]["onnxruntime"] is True and doc["can_run"]["tensorrt"] is False
    table = cli("doctor", env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "hrm-edge[trt]" in table.stdout  # rich markup must not swallow the [extra]


# --------------------------------------------------------------------------------------------------
# build-engine: checks that come before TensorRT
# --------------------------------------------------------------------------------------------------
def test_int8_needs_qdq_nodes(tmp_path) -> None:
    qdq = make_bundle(tmp_path / "qdq", "qdq")
    plain = make_bundle(tmp_path / "plain", "fp32")
    ort8 = make_bundle(tmp_path / "ort8", "ort-int8")
    _, _, model = check_bundle(qdq, EngineOptions(int8=True))
    assert qdq_count(model) == 2
    with pytest.raises(HrmEdgeError, match="has none; export with --precision int8-qdq"):
        check_bundle(plain, EngineOptions(int8=True))
    with pytest.raises(HrmEdgeError, match="ONNX Runtime's dynamic int8"):
        check_bundle(ort8, EngineOptions(int8=True))
    check_bundle(plain, EngineOptions(fp16=True))  # only --int8 asks for Q/DQ


def _main(capsys, *args: str) -> tuple[int, str]:
    """`hrm-edge ARGS` in this process (cli.main: HrmEdgeError -> one stderr line, exit 2)."""
    from hrm_edge import cli as cli_mod

    old = sys.argv
    sys.argv = ["hrm-edge", *args]
    try:
        cli_mod.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def test_build_engine_cli_errors_are_one_line_exit_2(tmp_path, capsys) -> None:
    plain = make_bundle(tmp_path / "plain", "fp32")
    fixed = make_bundle(tmp_path / "fixed", "fp32", batch=4)
    cases = [
        (["build-engine", str(plain), "--int8"], "QuantizeLinear/DequantizeLinear"),
        (["build-engine", str(plain), "--min-batch", "8", "--max-batch", "4"], "--min-batch (8)"),
        (["build-engine", str(plain), "--gpu-fallback"], "--gpu-fallback only applies with --dla"),
        (["build-engine", str(plain), "--dla", "0"], "DLA runs fp16 or int8 only"),
        (["build-engine", str(plain), "--dla", "0", "--fp16"], "DLA needs a static shape (min = opt = max batch)"),
        (["build-engine", str(fixed)], "fixed batch of 4"),
        (["build-engine", str(tmp_path / "none")], "no such export bundle"),
        (["build-engine", str(plain), "--out", str(plain)], "existing folder"),
    ]
    if __import__("importlib").util.find_spec("tensorrt") is None:
        cases.append((["build-engine", str(make_bundle(tmp_path / "qdq", "qdq")), "--int8"],
                      "TensorRT is not installed"))  # the Q/DQ bundle passes the check and then needs TensorRT
        cases.append((["build-engine", str(plain), "--strongly-typed"], "TensorRT is not installed"))
    for args, msg in cases:
        code, err = _main(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and msg in err, (args, err)
    assert not list(plain.glob("model.engine*"))


def test_build_engine_help_documents_every_flag() -> None:
    p = cli("build-engine", "--help", env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert p.returncode == 0
    for flag in ("--fp16", "--int8", "--strongly-typed", "--workspace", "--timing-cache", "--min-batch",
                 "--opt-batch", "--max-batch", "--builder-level", "--dla", "--gpu-fallback", "--out"):
        line = next((x for x in p.stdout.splitlines() if f" {flag} " in x), "")
        assert len(line.split(flag, 1)[1].strip()) > 20, f"{flag} has no help text"


def test_fp16_keeps_norms_softmax_reductions_fp32_in_both_families(tiny_step_bundle, tiny_lite_bundle) -> None:
    act = onnx.load(str(tiny_step_bundle / "model.onnx"))
    names = set(fp32_node_names(act))
    ops = {n.name: n.op_type for n in act.graph.node}
    assert {ops[n] for n in names} <= {"ReduceMean", "Softmax", "Mul", "Pow", "Add", "Sqrt", "Div", "Sub"}
    reduces = [n for n, op in ops.items() if op in ("ReduceMean", "Softmax")]
    assert reduces and set(reduces) <= names
    assert not [n for n in names if ops[n] in ("MatMul", "Gemm", "Gather")]
    # an RMSNorm is ReduceMean(x^2) -> +eps -> Sqrt -> x / .: the whole chain is kept (export/fusable.py
    # re-expresses x*x as Pow and x*rsqrt(v) as x/sqrt(v) and keeps the exporter's node names)
    chain = {"/L_level/layers.0/Mul": "Pow", "/L_level/layers.0/ReduceMean": "ReduceMean",
             "/L_level/layers.0/Add_1": "Add", "/L_level/layers.0/Sqrt": "Sqrt", "/L_level/layers.0/Mul_1": "Div"}
    assert set(chain) <= names and {n: ops[n] for n in chain} == chain
    lite = onnx.load(str(tiny_lite_bundle / "model.onnx"))
    lite_names = set(fp32_node_names(lite))
    lite_ops = {n.name: n.op_type for n in lite.graph.node}
    for part, op in (("ReduceMean", "ReduceMean"), ("Sub", "Sub"), ("Mul", "Pow"), ("ReduceMean_1", "ReduceMean"),
                     ("Sqrt", "Sqrt"), ("Mul_1", "Div")):  # LayerNorm: mean, centre, variance, scale
        assert f"/h_norm/{part}" in lite_names and lite_ops[f"/h_norm/{part}"] == op


# --------------------------------------------------------------------------------------------------
# Dockerfile.l4t and jetson/
# --------------------------------------------------------------------------------------------------
def test_dockerfile_l4t_required_lines() -> None:
    text = (REPO / "Dockerfile.l4t").read_text()
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    assert lines[0] == "ARG BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0"
    assert "FROM ${BASE}" in lines
    assert any(x.startswith("ARG PIP_INDEX_URL=") or x.startswith("ARG JETSON_INDEX=") for x in lines)
    assert any("hrm-edge" in x and "[jetson]" in x for x in lines) or any(".[jetson]" in x for x in lines)
    assert lines[-1] == 'ENTRYPOINT ["hrm-edge"]'
    keywords = {"ARG", "FROM", "ENV", "RUN", "COPY", "WORKDIR", "ENTRYPOINT", "LABEL"}
    joined = text.replace("\\\n", " ")
    for x in joined.splitlines():
        x = x.strip()
        if x and not x.startswith("#"):
            assert x.split()[0] in keywords, f"unknown Dockerfile instruction: {x}"
    if shutil.which("hadolint"):
        subprocess.run(["hadolint", str(REPO / "Dockerfile.l4t")], check=True)


@pytest.mark.parametrize("script", ["jetson/setup.sh", "jetson/clocks.sh"])
def test_jetson_scripts_parse_and_refuse_non_jetson(script, tmp_path) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK)
    subprocess.run(["bash", "-n", str(path)], check=True)
    if not Path("/etc/nv_tegra_release").exists():
        p = subprocess.run(["bash", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert p.returncode == 2 and "not a Jetson" in p.stderr


def test_device_check_script_says_in_one_line_when_there_is_no_gpu(tmp_path) -> None:
    """jetson/check.sh needs TensorRT + pycuda + a CUDA device; without them: one line, exit 2, nothing written.
    (Its device run itself is for a machine with a GPU: none of this project's has one.)"""
    script = REPO / "jetson" / "check.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is importable here: the script would run the device path")
    p = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHON=sys.executable))
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "check.sh: no NVIDIA GPU with TensorRT and pycuda here: TensorRT is not importable (No module named "
        "'tensorrt')"]
    assert not (tmp_path / "out").exists()
    text = script.read_text()
    for step in ("doctor --json", "demo --tasks", "--precision fp16", "build-engine", "compare", "--cuda-graph",
                 "report.json", "report.md"):
        assert step in text
