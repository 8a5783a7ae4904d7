"""``par-lightning export``: ONNX Runtime reproduces PyTorch, the batch axis is dynamic, the metadata round-trips.

The reference outputs come from a module rebuilt independently of the exporter's loader: a fresh
``PARModule`` from the checkpoint's hyper-parameters, its compression plan applied without decomposing
and the checkpoint's state dict loaded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from data_modules import PA100KDataModule
from par_lightning import PARModule
from par_lightning.cli import main
from par_lightning.compression import CompressionPlan, LayerPlan
from par_lightning.export import ExportError, export_checkpoint, read_metadata
from tests.helpers_pa100k import write_pa100k

pytestmark = pytest.mark.usefixtures("one_thread")

PLAN = {  # every factorization the compression library builds, on the tiny baseline's layers
    "classifier": LayerPlan("svd", 2),
    "backbone.layer3.0.conv3": LayerPlan("svd", 8),
    "backbone.layer4.0.conv2": LayerPlan("cp3", 6),
    "backbone.layer2.0.conv2": LayerPlan("cp4", 5),
}


def _save(module: PARModule, path: Path) -> Path:
    """A real Lightning checkpoint of ``module`` (hyper-parameters, state dict, compression plan), no fit."""
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def _reference(ckpt_path: Path) -> PARModule:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module = PARModule(**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")})
    if "compression_plan" in ckpt:
        module.apply_compression(CompressionPlan.from_dict(ckpt["compression_plan"]), decompose=False)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def _max_diff(onnx_path: Path, ckpt_path: Path, batch: int, height: int, width: int) -> float:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(batch))
    (got,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        ref = _reference(ckpt_path)(x).numpy()
    assert got.shape == ref.shape == (batch, ref.shape[1])
    return float(np.abs(got - ref).max())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dense tiny baseline (test_resnet) after one training step at 32x16 on a tiny PA-100K set."""
    root = tmp_path_factory.mktemp("fit")
    data = write_pa100k(root / "pa100k", sizes=(4, 2, 2))
    dm = PA100KDataModule(root=str(data.root), height=32, width=16, batch_size=4, num_workers=0)
    torch.manual_seed(0)
    module = PARModule(
        arch="tiny", num_attributes=dm.num_attributes, attribute_names=dm.attribute_names,
        pos_ratios=dm.pos_ratios,
    )  # fmt: skip
    trainer = L.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    path = root / "last.ckpt"
    trainer.save_checkpoint(path)  # with the DataModule's hyper-parameters: the training input size
    return path


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compressed checkpoint (SVD, CP3 and CP4 layers, channels_last) without a recorded input size."""
    torch.manual_seed(0)
    module = PARModule(arch="tiny", backbone="test_resnet", num_attributes=4, channels_last=True)
    module.apply_compression(CompressionPlan(PLAN), decompose=False)  # zero factors of the right shapes
    with torch.no_grad():
        for name in PLAN:  # random factors: a parity check on zeros would prove nothing
            for p in module.model.get_submodule(name).parameters():
                p.normal_(0.0, 0.3)
    return _save(module, tmp_path_factory.mktemp("compressed") / "compressed.ckpt")


def test_cli_exports_a_fitted_checkpoint_beside_it_with_dynamic_batch_and_metadata(
    fitted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["export", "--ckpt_path", str(fitted), "--format", "onnx"])
    out = capsys.readouterr().out
    assert "batch 1: max |ONNX Runtime - PyTorch|" in out and "batch 3:" in out
    path = fitted.with_suffix(".onnx")
    assert path.is_file() and str(path) in out
    for batch in (1, 5):  # one file, two batch sizes, neither the traced one
        assert _max_diff(path, fitted, batch, 32, 16) <= 1e-4  # the training size, read from the checkpoint

    ckpt = torch.load(fitted, map_location="cpu", weights_only=True)
    names = ckpt["hyper_parameters"]["attribute_names"]
    assert len(names) == 26 and names[0] == "Female"  # the PA-100K attribute list of the fitted data
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta == read_metadata(path)
    assert json.loads(meta["attribute_names"]) == names and meta["num_attributes"] == "26"
    assert (meta["input_height"], meta["input_width"]) == ("32", "16")
    assert json.loads(meta["normalization_mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["normalization_std"]) == [0.229, 0.224, 0.225]
    assert meta["compressed"] == "false" and "compression_plan" not in meta
    assert meta["output_name"] == "logits" and meta["arch"] == "tiny"
    (inp,) = session.get_inputs()
    assert inp.name == "images" and inp.type == "tensor(float)" and inp.shape[1:] == [3, 32, 16]
    assert isinstance(inp.shape[0], str)  # symbolic: the batch axis is dynamic


@pytest.mark.parametrize(
    "exporter",
    ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)],  # dynamo: ~15 s here
)
def test_compressed_checkpoint_exports_its_factorized_graph(
    compressed: Path, tmp_path: Path, exporter: str
) -> None:
    out = tmp_path / f"{exporter}.onnx"
    result = export_checkpoint(compressed, out, height=40, width=24, exporter=exporter)  # type: ignore[arg-type]
    assert result.path == out and set(result.max_abs_diff) == {1, 3}
    for batch in (1, 5):
        assert _max_diff(out, compressed, batch, 40, 24) <= 1e-4
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in _reference(compressed).modules())
    graph = onnx.load(str(out)).graph
    assert sum(n.op_type == "Conv" for n in graph.node) == convs  # 15 dense convs + the factors' extra ones
    meta = read_metadata(out)
    ckpt_plan = torch.load(compressed, map_location="cpu", weights_only=True)["compression_plan"]
    assert meta["compressed"] == "true" and json.loads(meta["compression_plan"]) == ckpt_plan
    assert {lp["method"] for lp in ckpt_plan["layers"].values()} == {"svd", "cp3", "cp4"}
    assert json.loads(meta["attribute_names"]) == [f"attr{j}" for j in range(4)]  # the module's defaults
    assert meta["exporter"] == exporter


def test_alm_checkpoint_exports_its_merged_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    names = ["hat", "bag", "skirt"]
    module = PARModule(
        arch="alm", backbone="test_resnet", num_attributes=3, attribute_names=names,
        model_kwargs={"pyramid_channels": 16, "reduction": 4},
    )  # fmt: skip
    ckpt = _save(module, tmp_path / "alm.ckpt")
    result = export_checkpoint(ckpt, height=64, width=32)
    assert result.path == tmp_path / "alm.onnx"
    for batch in (1, 5):
        assert _max_diff(result.path, ckpt, batch, 64, 32) <= 1e-4
    assert json.loads(read_metadata(result.path)["attribute_names"]) == names


def test_errors_name_the_fix(
    compressed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as exc:
        main(["export", "--ckpt_path", str(missing)])
    assert exc.value.code == 2 and f"checkpoint '{missing}' does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", "--ckpt_path", str(compressed), "--format", "tflite"])
    assert exc.value.code == 2 and "invalid choice: 'tflite' (choose from 'onnx')" in capsys.readouterr().err
    with pytest.raises(ExportError, match=r"format must be one of \['onnx'\]"):
        export_checkpoint(compressed, fmt="tflite")
    with pytest.raises(ExportError, match="does not record the training input size.*--height H --width W"):
        export_checkpoint(compressed)  # saved without a DataModule
    with pytest.raises(ExportError, match="both --height and --width"):
        export_checkpoint(compressed, height=32)
    not_lightning = tmp_path / "weights.ckpt"
    torch.save({"weight": torch.zeros(2)}, not_lightning)
    with pytest.raises(ExportError, match="no 'hyper_parameters'"):
        export_checkpoint(not_lightning)
    other = tmp_path / "other.ckpt"  # hyper-parameters of a PARModule, weights of something else
    hparams = {"arch": "tiny", "backbone": "test_resnet", "num_attributes": 2}
    state = {"net.weight": torch.zeros(1)}
    torch.save(
        {"hyper_parameters": hparams, "state_dict": state, "pytorch-lightning_version": L.__version__}, other
    )
    with pytest.raises(ExportError, match="(?s)does not load into a PARModule.*Missing key") as err:
        export_checkpoint(other, height=32, width=16)
    assert len(str(err.value)) < 700  # the first keys, not hundreds of them

    # a parity failure exits with 1 and writes nothing
    monkeypatch.setattr("par_lightning.export.onnx_max_abs_diff", lambda *a, **k: {1: 0.0, 3: 2e-4})
    out = tmp_path / "bad.onnx"
    argv = ["export", "--ckpt_path", str(compressed), "--height", "32", "--width", "16", "--output", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1 and "0.0002 > atol 0.0001" in capsys.readouterr().err
    assert not out.exists()
    main([*argv, "--atol", "1e-3"])
    assert out.is_file()
