"""The front door and the manual stay true: generated reference current, README short, links and spec valid."""

import re

import yaml

from sdgen.spec import build_spec
from sdgen.specdoc import reference

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_spec_reference_is_generated_from_the_models():
    assert (ROOT / "docs" / "spec.md").read_text(encoding="utf-8") == reference(), "run `make docs`"


def test_readme_is_a_front_door():
    assert len(README.splitlines()) < 200
    assert README.index("make demo") < README.index("## A spec")  # the two commands come first


def test_readme_links_exist():
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README)
    assert links and [link for link in links if not (ROOT / link).exists()] == []
    for page in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\((?!http)([^)#]+\.md)", page.read_text(encoding="utf-8")):
            assert (page.parent / link).exists(), f"{page.name} links to {link}"


def test_readme_spec_is_valid(tmp_path):
    block = re.search(r"```yaml\n(.*?)```", README, re.S).group(1)
    spec = build_spec(yaml.safe_load(block), base_dir=tmp_path)
    assert spec.sample_size == 300 and len(spec.labels) == 3 and spec.examples
