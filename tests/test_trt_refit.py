"""`build-engine --refittable` and `hrm-edge refit` against the REAL TensorRT 11.4, 10.3 and 8.6 Python APIs.

As in test_trt_conformance.py, the real bindings run over stub libraries and every TensorRT object is a double
spec'd from the real class (tests/_trt_doubles.py `refit` mode): a call the version lacks or a wrong signature
fails. What would break each test: the REFIT flag not set or not recorded, 10.x/11.x not handing the new ONNX
file to `OnnxParserRefitter`, 8.x setting other values than the new bundle's (or reaching for the ONNX
refitter, which it lacks), a missing weight or a failed refit passing silently or leaving a written engine,
the sidecar still naming the old bundle, or a bundle of another shape being accepted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import _trt_real
import pytest
import torch

from hrm_edge.config import preset
from hrm_edge.model import build_model

VERSIONS = _trt_real.VERSIONS


@pytest.fixture(scope="module", params=VERSIONS)
def real(request) -> _trt_real.RealTrt:
    return _trt_real.require(request.param)


def _model(shift: float = 0.0, name: str = "tiny") -> torch.nn.Module:
    model = build_model(preset(name), seed=0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if shift and n != "puzzle_emb.weights":
                p.add_(shift)  # a full-mode adaptation: the same graph, other dense weights
    return model


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    from hrm_edge.export import export_model

    root = tmp_path_factory.mktemp("refit")
    out = {}
    for key, model in (("base", _model()), ("adapted", _model(0.01))):
        out[key] = export_model(model, root / key, act="step", l4_puzzles=0, l3_batches=(2,)).path
    return out


def _engine(real, bundle: Path, tmp_path: Path, refittable: bool = True) -> Path:
    engine = tmp_path / "model.engine"
    got = real.run("_trt_doubles.py", "build", str(bundle), str(engine), json.dumps({"refittable": refittable}))
    assert "error" not in got, got
    assert got["sidecar"]["refittable"] is refittable
    assert ("REFIT" in got["sidecar"]["flags"]) is refittable
    assert ("--refit" in got["sidecar"]["trtexec"]) is refittable
    return engine


def _refit(real, engine: Path, bundle: Path, out: Path, *flags: str) -> dict:
    return real.run("_trt_doubles.py", "refit", str(engine), str(bundle), str(out), *flags)


def test_refit_hands_the_new_weights_to_each_versions_refitter(real, bundles, tmp_path) -> None:
    engine = _engine(real, bundles["base"], tmp_path)
    out = tmp_path / "refitted.engine"
    got = _refit(real, engine, bundles["adapted"], out)
    assert "error" not in got, got
    assert got["problems"] == []
    assert got["weights_that_changed"] > 0  # the two bundles really differ
    if real.version.startswith("8."):
        assert got["from_file"] is None and "OnnxParserRefitter.refit_from_file" not in got["calls"]
        assert len(got["set_named"]) == got["engine_weights"]
        assert got["named_values_are_the_new_bundles"]
        assert got["sidecar"]["refits"][-1]["method"] == "Refitter.set_named_weights"
    else:
        assert got["from_file"] == str(bundles["adapted"] / "model.onnx") and got["set_named"] == []
        assert got["sidecar"]["refits"][-1]["method"] == "OnnxParserRefitter.refit_from_file"
    assert got["refit_calls"] == 1 and got["out_bytes"] == "PLAN-REFITTED"
    man = json.loads((bundles["adapted"] / "manifest.json").read_text())
    sc = json.loads((tmp_path / "refitted.engine.json").read_text())
    assert sc["onnx_sha256"] == man["onnx"]["sha256"] and sc["bundle"] == str(bundles["adapted"].resolve())
    assert json.loads((tmp_path / "model.engine.json").read_text())["bundle"] == str(bundles["base"].resolve())


def test_tensorrt_85_refits_by_name(bundles, tmp_path) -> None:
    """8.5 as modelled (8.6 minus NVIDIA's list of 8.6 additions): the by-name path, nothing 8.6-only."""
    real = _trt_real.require("8.6")
    engine = tmp_path / "model.engine"
    built = real.run("_trt_doubles.py", "build", str(bundles["base"]), str(engine), json.dumps({"refittable": True}),
                     "--as-8.5")
    assert "error" not in built and built["sidecar"]["tensorrt_version"] == "8.5.2.2"
    got = _refit(real, engine, bundles["adapted"], tmp_path / "r.engine", "--as-8.5")
    assert "error" not in got, got
    assert got["problems"] == [] and got["version"] == "8.5.2.2"
    assert got["named_values_are_the_new_bundles"] and len(got["set_named"]) == got["engine_weights"]


def test_a_missing_weight_or_a_failed_refit_writes_nothing(real, bundles, tmp_path) -> None:
    engine = _engine(real, bundles["base"], tmp_path)
    out = tmp_path / "refitted.engine"
    got = _refit(real, engine, bundles["adapted"], out, "--missing", "mystery_weight")
    assert "mystery_weight" in got.get("error", "") and got["out_bytes"] is None
    got = _refit(real, engine, bundles["adapted"], out, "--refit-fails")
    assert "could not refit" in got.get("error", "") and got["out_bytes"] is None


def test_refit_refuses_a_plain_engine_and_another_shape(real, bundles, tmp_path_factory, tmp_path) -> None:
    from hrm_edge.export import export_model

    plain = _engine(real, bundles["base"], tmp_path_factory.mktemp("plain"), refittable=False)
    got = _refit(real, plain, bundles["adapted"], tmp_path / "x.engine")
    assert "not built refittable" in got["error"] and got["refit_calls"] == 0
    other = export_model(build_model(preset("tiny-trm"), seed=0), tmp_path / "trm", act="step", l4_puzzles=0,
                         l3_batches=(2,)).path
    engine = _engine(real, bundles["base"], tmp_path_factory.mktemp("r"))
    got = _refit(real, engine, other, tmp_path / "y.engine")
    assert "another model shape" in got["error"] and got["refit_calls"] == 0


def test_refit_command_end_to_end(real, bundles, tmp_path) -> None:
    """`hrm-edge refit ENGINE --bundle NEW --out OUT` itself (option checks, the refit, the printed line) against
    each version's doubles; a foreign bundle is one error line, exit 2, nothing written."""
    engine = _engine(real, bundles["base"], tmp_path)
    out = tmp_path / "refitted.engine"
    got = _refit(real, engine, bundles["adapted"], out, "--cli")
    assert got["rc"] == 0 and got["problems"] == [] and got["refit_calls"] == 1, got
    method = "Refitter.set_named_weights" if real.version.startswith("8.") else "OnnxParserRefitter.refit_from_file"
    assert got["stdout"].startswith(f"refitted {out} ({method}, ") and got["stdout"].rstrip().endswith(
        f"it now runs {bundles['adapted']}"), got["stdout"]
    assert got["out_bytes"] == "PLAN-REFITTED" and got["sidecar"]["bundle"] == str(bundles["adapted"].resolve())
    bad = tmp_path / "not-a-bundle"
    shutil.copytree(bundles["adapted"], bad)
    (bad / "manifest.json").unlink()
    got = _refit(real, engine, bad, tmp_path / "x.engine", "--cli")
    errors = [ln for ln in got["stderr"].splitlines() if ln.startswith("error: ")]
    assert got["rc"] == 2 and len(errors) == 1 and "no manifest.json" in errors[0], got
    assert got["out_bytes"] is None and not (tmp_path / "x.engine.json").exists()
