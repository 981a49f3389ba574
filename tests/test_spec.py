
import pytest

from sdgen.errors import SpecError
from sdgen.spec import build_spec, load_spec

from conftest import EXAMPLE_SPEC, base_spec


def test_example_spec_loads():
    spec = load_spec(EXAMPLE_SPEC)
    assert list(spec.labels) == ["polite", "somewhat polite", "neutral", "impolite"]
    assert spec.categories == {"travel": ["air", "train"], "stores": ["appliances", "toys and games"]}
    assert spec.prompt_style == "fewshot" and not spec.wants_reasoning
    assert spec.output_path == EXAMPLE_SPEC.parent / "customer_service.csv"
    assert all(ex.reasoning for ex in spec.examples)  # `prompt_style: reasoning` is a one-line switch
    reasoning = load_spec(EXAMPLE_SPEC, prompt_style="reasoning")
    assert reasoning.wants_reasoning


def test_labels_as_list_and_models_as_strings():
    spec = build_spec(base_spec(labels=["a", "b"], models="x.gguf", examples=[]))
    assert spec.labels == {"a": "", "b": ""}
    assert [m.name for m in spec.models] == ["x.gguf"] and spec.models[0].weight == 1.0


def test_overrides_map_shortcuts(tmp_path, write_spec):
    path = write_spec(base_spec())
    spec = load_spec(path, rows=7, model="m.gguf", seed=3, threads=1, output=tmp_path / "o.jsonl")
    assert (spec.sample_size, spec.seed, spec.engine.threads) == (7, 3, 1)
    assert [m.name for m in spec.models] == ["m.gguf"]
    assert spec.output_path == tmp_path / "o.jsonl"


def test_output_override_is_relative_to_cwd_but_spec_output_to_spec(tmp_path, write_spec, monkeypatch):
    (tmp_path / "specs").mkdir()
    path = write_spec(base_spec(output="in-spec.csv"), name="specs/s.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_spec(path).output_path == tmp_path / "specs" / "in-spec.csv"
    assert load_spec(path, output="demo/o.csv").output_path == tmp_path / "demo" / "o.csv"


def test_toml_spec(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('task = "t"\nsample_size = 3\nlabels = ["x", "y"]\n[categories]\nshop = ["toys"]\n')
    spec = load_spec(path)
    assert spec.sample_size == 3 and list(spec.labels) == ["x", "y"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": None}, "task: "),
        ({"sample_size": 0}, "sample_size: Input should be greater than 0"),
        ({"batch_size": -1}, "batch_size: Input should be greater than 0"),
        ({"labels": {}}, "labels: must name at least one label"),
        ({"labels": ["a", "a"]}, "duplicate labels: a"),
        ({"labels": ["a", " A "]}, "labels differ only in case"),
        ({"categories": {"travel": []}}, "category 'travel' must list at least one type"),
        ({"categories": {}}, "must name at least one category"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"generation": {"top_p": 1.3}}, "generation.top_p: Input should be less than or equal to 1"),
        ({"generation": {"max_tokens": 5}}, "generation.max_tokens: unknown field"),
        ({"prompt_style": "chatty"}, "prompt_style: 'chatty' is neither"),
        ({"output": "out.xlsx"}, "unsupported extension"),
        ({"models": []}, "models: List should have at least 1 item"),
        ({"models": [{"name": "m", "weight": 0}]}, "models.0.weight: Input should be greater than 0"),
    ],
)
def test_invalid_specs_name_the_field(changes, message):
    data = base_spec(**changes)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(SpecError) as err:
        build_spec(data, source="s.yaml")
    assert str(err.value).startswith("s.yaml: ")
    assert message in str(err.value)


def test_example_with_unknown_label_is_named():
    data = base_spec()
    data["examples"][1]["label"] = "grumpy"
    with pytest.raises(SpecError, match=r"examples\.1: label 'grumpy' is not one of the labels"):
        build_spec(data)


def test_example_with_type_of_other_category():
    data = base_spec()
    data["examples"][0]["type"] = "appliances"
    with pytest.raises(SpecError, match="type 'appliances' is not a type of category 'travel'"):
        build_spec(data)


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: x\nlabels: [a, b\nsample_size: 3\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: malformed YAML: line \d+"):
        load_spec(path)


def test_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("task: x\nsample_size: 3\nlabels:\n  a: one\n  a: two\ncategories: {c: [t]}\n")
    with pytest.raises(SpecError, match="line 5: duplicate key 'a'"):
        load_spec(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(path)


def test_template_style_resolves_relative_to_spec(tmp_path, write_spec):
    (tmp_path / "t.j2").write_text("Write {{ label }} about {{ type }}.")
    spec = load_spec(write_spec(base_spec(prompt_style="t.j2")))
    assert spec.template_path == tmp_path / "t.j2"


def test_unicode_and_punctuation_labels_survive():
    labels = {'très "poli", vraiment': "d", "naïve\nlabel": "", "😀": ""}
    spec = build_spec(base_spec(labels=labels, examples=[]))
    assert list(spec.labels) == list(labels)


def test_label_avoid_lists_are_read_from_the_long_label_form():
    labels = {"polite": "Kind.", "somewhat polite": "Mixed.", "neutral": {"description": "Plain.", "avoid": "please"},
              "impolite": {"description": "Rude.", "not": "Kind.", "avoid": ["could  you", "thanks"]}}  # fmt: skip
    spec = build_spec(base_spec(labels=labels))
    assert spec.label_avoid == {"neutral": ["please"], "impolite": ["could you", "thanks"]}
    assert spec.labels["impolite"] == "Rude." and spec.label_contrasts == {"impolite": "Kind."}
    assert spec.avoided.found("Could you\tfix it?", "impolite") == "could you"
    assert spec.avoided.found("Could you fix it?", "polite") is None


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"neutral": {"description": "Plain.", "avoid": ["please", " "]}}, "labels.neutral.avoid: has an empty phrase"),
        ({"neutral": {"description": "Plain.", "avoids": ["please"]}}, "labels.neutral: unknown field 'avoids'"),
        ({"neutral": {"description": "Plain.", "avoid": ["please", 3]}}, r"labels.neutral.avoid: give a phrase or a list"),
        ({"neutral": {"description": "Plain.", "avoid": ["bicycle"]}},
         "examples.2: its text holds 'bicycle', which labels.neutral.avoid rules out"),
    ],
)
def test_bad_avoid_lists_are_named(labels, message):
    data = base_spec(labels={"polite": "", "somewhat polite": "", "neutral": "", "impolite": "", **labels})
    with pytest.raises(SpecError, match=message):
        build_spec(data)


def test_anchor_and_same_label_together_are_refused_with_the_reason(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("text,label\nhi,polite\n")
    with pytest.raises(SpecError, match="anchor: true quotes a real row of the label asked for.*leave same_label out"):
        build_spec(base_spec(examples_from={"path": str(real), "anchor": True, "same_label": True}))
