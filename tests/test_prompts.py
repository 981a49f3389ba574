import os

import jinja2
import pytest

from sdgen.errors import SpecError
from sdgen.plan import make_plan
from sdgen.prompts import PromptBuilder, PromptMode, detect_mode
from sdgen.spec import build_spec

from conftest import base_spec

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA = (
    "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
    "{{ m.content }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
)


def renderer(template: str):
    env = jinja2.Environment(keep_trailing_newline=True)

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)

    compiled = env.from_string(template)
    return lambda messages: compiled.render(messages=messages, add_generation_prompt=True, raise_exception=raise_exception)


def builder(mode_template: str | None, **changes):
    spec = build_spec(base_spec(sample_size=40, **changes))
    render = renderer(mode_template) if mode_template else None
    mode = detect_mode(mode_template, render)
    return spec, PromptBuilder(spec, mode, render)


def test_mode_detection():
    assert detect_mode(CHATML, renderer(CHATML)) is PromptMode.CHAT
    assert detect_mode(GEMMA, renderer(GEMMA)) is PromptMode.CHAT_NO_SYSTEM
    merges = "{% for m in messages %}{% if m.role != 'system' %}[{{ m.content }}]{% endif %}{% endfor %}"
    assert detect_mode(merges, renderer(merges)) is PromptMode.CHAT_NO_SYSTEM
    assert detect_mode(None, None) is PromptMode.COMPLETION
    assert detect_mode("", renderer(CHATML)) is PromptMode.COMPLETION


@pytest.mark.parametrize("style", ["fewshot", "reasoning"])
@pytest.mark.parametrize("template", [CHATML, GEMMA, None])
def test_shared_text_first_row_text_last(style, template):
    spec, b = builder(template, prompt_style=style)
    plan = make_plan(spec)
    prompts = [b.build(r) for r in plan]
    shared = os.path.commonprefix(prompts)
    # Everything up to the row's own request is the same for every row; it holds all examples.
    for ex in spec.examples:
        assert ex.output.strip() in shared
    for row, prompt in zip(plan, prompts):
        tail = prompt[len(shared) :]
        assert row.label in tail and row.type in tail
        assert len(tail) < 300


def test_chat_prompt_uses_system_turn_and_demonstrated_examples():
    spec, b = builder(CHATML, prompt_style="reasoning")
    prompt = b.build(make_plan(spec)[0])
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.count("<|im_start|>assistant\n") == len(spec.examples) + 1
    assert prompt.endswith("<|im_start|>assistant\nOUTPUT:")
    for label, description in spec.labels.items():
        assert f"- {label}: {description}" in prompt
    assert prompt.count("\nREASONING: ") == len(spec.examples)  # one per demonstrated answer


def test_no_system_role_is_folded_into_first_user_turn():
    spec, b = builder(GEMMA, prompt_style="fewshot", rows_per_request=1)
    assert b.mode is PromptMode.CHAT_NO_SYSTEM
    prompt = b.build(make_plan(spec)[0])
    assert "system" not in prompt.split("\n")[0]
    first_user = prompt.split("<end_of_turn>")[0]
    assert first_user.startswith("<start_of_turn>user\n" + b.system)
    assert "Task: " in first_user
    assert prompt.endswith("<start_of_turn>model\n")


def test_the_request_ends_with_the_label_and_what_it_means():
    spec, b = builder(CHATML, prompt_style="fewshot", labels={"polite": "Courteous: thanks, greetings.", "rude": "API abuse.",
                                                              "plain": ""}, examples=[], rows_per_request=1)  # fmt: skip
    requests = {row.label: b.build(row).rsplit("<|im_start|>user\n", 1)[1] for row in make_plan(spec)}
    assert requests["polite"].split("<|im_end|>")[0].endswith("Write one new text that is polite: courteous: thanks, greetings.")
    assert requests["polite"].startswith("Category: ")
    assert "that is rude: API abuse." in requests["rude"]  # an acronym keeps its capitals
    assert "that is plain (not polite, not rude)." in requests["plain"]  # no description: the other labels


@pytest.mark.parametrize("contrast", [True, False])
def test_a_label_with_an_avoid_list_asks_for_texts_without_its_words(contrast):
    labels = {"polite": "Courteous.", "plain": {"description": "Matter-of-fact.", "avoid": ["please", "could you"]}}
    spec, b = builder(CHATML, prompt_style="fewshot", labels=labels, examples=[], contrast=contrast)
    requests = {row.label: b.build_group((row,), 4).split("<|im_end|>")[-2] for row in make_plan(spec)}
    told = 'each one plain: matter-of-fact. Never use the words "please", "could you".'
    assert requests["plain"].endswith(told) is contrast
    assert "Never use" not in requests["polite"]


def test_fewshot_asks_for_one_output_and_has_no_reasoning():
    spec, b = builder(CHATML, prompt_style="fewshot", rows_per_request=1)
    prompt = b.build(make_plan(spec)[0])
    assert "return only one output" in prompt
    assert "REASONING" not in prompt and b.response_prefix == ""


def test_fewshot_asks_for_four_numbered_texts_by_default_and_other_styles_for_one():
    spec, b = builder(CHATML, prompt_style="fewshot")
    assert spec.texts_per_request == 4 and b.numbered
    rows = tuple(r for r in make_plan(spec) if (r.label, r.category, r.type) == (spec.examples[0].label,
                 spec.examples[0].category, spec.examples[0].type))[:4]  # fmt: skip
    prompt = b.build_group(rows)
    assert prompt.endswith("<|im_start|>assistant\n1.") and f"Write {len(rows)} new texts, each one" in prompt
    assert builder(CHATML, prompt_style="reasoning")[0].texts_per_request == 1
    assert not builder(None, prompt_style="fewshot")[1].numbered  # a base model answers one text at a time


def test_completion_prompt_ends_where_output_begins():
    spec, b = builder(None, prompt_style="fewshot")
    row = make_plan(spec)[0]
    prompt = b.build(row)
    assert prompt.endswith(f"Label: {row.label}\nCategory: {row.category}\nType: {row.type}\nText:")
    assert "<|im_start|>" not in prompt and b.response_prefix == "Text:"
    assert "\nLabel:" in b.stop_strings


def test_custom_template(tmp_path):
    (tmp_path / "t.j2").write_text("{{ task }} | {{ label }} ({{ label_description }}) {{ category }}/{{ type }}")
    spec = build_spec(base_spec(prompt_style="t.j2", sample_size=3), base_dir=tmp_path)
    b = PromptBuilder(spec, PromptMode.CHAT, renderer(CHATML))
    row = make_plan(spec)[0]
    prompt = b.build(row)
    assert f"| {row.label} ({spec.labels[row.label]}) {row.category}/{row.type}<|im_end|>" in prompt


def test_custom_template_with_unknown_variable_is_a_spec_error(tmp_path):
    (tmp_path / "t.j2").write_text("{{ lable }}")
    spec = build_spec(base_spec(prompt_style="t.j2", sample_size=1), base_dir=tmp_path)
    with pytest.raises(SpecError, match="template error: 'lable' is undefined"):
        PromptBuilder(spec, PromptMode.COMPLETION).build(make_plan(spec)[0])


def test_custom_template_syntax_error(tmp_path):
    (tmp_path / "t.j2").write_text("{% if %}")
    spec = build_spec(base_spec(prompt_style="t.j2", sample_size=1), base_dir=tmp_path)
    with pytest.raises(SpecError, match="t.j2: template syntax error at line 1"):
        PromptBuilder(spec, PromptMode.COMPLETION)


def test_same_label_examples_show_only_the_asked_labels_real_rows(tmp_path):
    import pandas as pd

    from sdgen.realdata import ExamplePool

    labels = list(base_spec()["labels"])
    real = tmp_path / "real.csv"
    pd.DataFrame([(f"real {label} text {i}", label) for label in labels for i in range(5)],
                 columns=["text", "label"]).to_csv(real, index=False)  # fmt: skip
    spec = build_spec(base_spec(sample_size=40, examples_from={"path": str(real), "per_label": 2, "same_label": True}))
    pool = ExamplePool(real, "text", "label", labels, per_label=2, seed=1, same_label=True)
    render = renderer(CHATML)
    prompts = PromptBuilder(spec, detect_mode(CHATML, render), render, pool)
    rows = {row.label: row for row in make_plan(spec)}
    for label, row in rows.items():
        shown = [line for line in prompts.build(row).splitlines() if "real " in line]
        assert len(shown) == 2 and all(f"real {label} text" in line for line in shown)
    first, second = labels[:2]
    assert prompts.prefix_of(0, first) != prompts.prefix_of(0, second)  # one cached prefix per label and group


def test_anchor_quotes_a_real_row_of_the_asked_label_in_the_request_after_the_shared_prefix(tmp_path):
    import pandas as pd

    from sdgen.plan import request_groups
    from sdgen.realdata import ExamplePool

    labels = list(base_spec()["labels"])
    real = tmp_path / "real.csv"
    pd.DataFrame([(f"real {label} text {i}", label) for label in labels for i in range(5)],
                 columns=["text", "label"]).to_csv(real, index=False)  # fmt: skip
    spec = build_spec(base_spec(sample_size=200, rows_per_request=4, examples_from={"path": str(real), "anchor": True}))
    pool = ExamplePool(real, "text", "label", labels, per_label=1, seed=spec.seed, anchor=True)
    render = renderer(CHATML)
    prompts = PromptBuilder(spec, detect_mode(CHATML, render), render, pool)
    groups = request_groups(make_plan(spec), 4)
    built = [(rows, prompts.build_group(rows, k)) for rows, k in groups]
    for rows, prompt in built:
        head, request = prompt.rsplit("<|im_start|>user\n", 1)
        assert "real " not in head  # the shared prefix holds no real row: the prefix cache serves every request
        quoted = [line for line in request.splitlines() if line.startswith("A real ")]
        assert len(quoted) == 1 and f'A real {rows[0].label} text: "real {rows[0].label} text' in quoted[0]
        assert "in the tone and style of the real text" in request
        assert prompts.prefix_of(rows[0].row, rows[0].label) == "rows"
    assert len({prompt.rsplit("A real ", 1)[1].split('"')[1] for _, prompt in built}) > len(labels)  # drawn per request
    assert built == [(rows, prompts.build_group(rows, k)) for rows, k in groups]  # the same every time (resume)
    row = make_plan(spec)[0]
    assert f'A real {row.label} text: "real {row.label} text' in prompts.build(row)  # a one-text request too
    completion = PromptBuilder(spec, PromptMode.COMPLETION, pool=pool).build(row)
    assert completion.endswith(f"Label: {row.label}\nCategory: {row.category}\nType: {row.type}\nText:")
    assert f"\n\nLabel: {row.label}\nText: real {row.label} text" in completion
