import pytest

from sdgen.errors import ModelError
from sdgen.models import BUILTINS, builtin_path, inspect_path, list_models, provision, resolve_model


def test_builtin_resolves_to_packaged_gguf():
    model = resolve_model("smollm2-135m-instruct")
    assert model.format == "gguf" and model.builtin is BUILTINS["smollm2-135m-instruct"]
    assert model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(model.path) and model.path.read_bytes()[:4] == b"GGUF"


def test_provision_verifies_the_package_record_hash():
    assert provision("smollm2-135m-instruct", quiet=True) == builtin_path("smollm2-135m-instruct")


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
    assert infos[str(tiny_models["base"])].format == "gguf"
    assert not infos[str(tmp_path / "missing")].provisioned
