import json

import pandas as pd
import pytest

from sdgen.errors import OutputError
from sdgen.store.files import dataset_columns, open_writer

TRICKY = [
    'He said "hi", then left',
    "line one\nline two\r\nline three",
    "commas, commas, commas",
    "unicode: naïve café 東京 😀",
    "  leading and trailing spaces  ",
    "semicolon; tab\there",
    "",
]


def rows(n_start=0):
    return [
        {"text": t, "label": 'la,"bel"', "category": "c\nat", "type": "ty", "model": "m",
         "reasoning": f"because {i}", "row": n_start + i, "seed": 1000 + i}
        for i, t in enumerate(TRICKY)
    ]  # fmt: skip


def read(path):
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_round_trip_through_pandas(tmp_path, ext):
    path = tmp_path / f"out{ext}"
    cols = dataset_columns(reasoning=True)
    with open_writer(path, cols) as w:
        w.write(rows(0))
        w.write(rows(100))  # a second batch: header must not repeat
        w.write([])
    df = read(path)
    assert list(df.columns) == cols
    assert len(df) == 2 * len(TRICKY)
    expected = pd.DataFrame(rows(0) + rows(100))[cols]
    for col in cols:
        assert df[col].tolist() == expected[col].tolist(), col


def test_columns_without_reasoning():
    assert dataset_columns(False) == ["text", "label", "category", "type", "model", "row", "seed"]


def test_csv_header_written_once(tmp_path):
    path = tmp_path / "o.csv"
    with open_writer(path, dataset_columns(False)) as w:
        for _ in range(3):
            w.write(rows())
    assert path.read_text().count("text,label,category,type,model,row,seed") == 1


def test_jsonl_is_one_object_per_line(tmp_path):
    path = tmp_path / "o.jsonl"
    with open_writer(path, dataset_columns(False)) as w:
        w.write(rows())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(TRICKY)
    assert json.loads(lines[3])["text"] == TRICKY[3]


def test_existing_output_is_never_overwritten(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("precious\n")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        open_writer(path, dataset_columns(False))
    assert path.read_text() == "precious\n"
    with open_writer(path, dataset_columns(False), overwrite=True) as w:
        w.write(rows())
    assert "precious" not in path.read_text()


def test_bad_outputs(tmp_path):
    with pytest.raises(OutputError, match="unsupported output format"):
        open_writer(tmp_path / "o.xlsx", ["text"])
    with pytest.raises(OutputError, match="is a directory"):
        open_writer(tmp_path, ["text"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create output dir"):
        open_writer(blocker / "sub" / "o.csv", ["text"])


def test_creates_missing_output_dirs(tmp_path):
    path = tmp_path / "a" / "b" / "o.csv"
    with open_writer(path, ["text"]) as w:
        w.write([{"text": "x"}])
    assert path.is_file()


def test_a_new_format_is_one_registry_entry(tmp_path, monkeypatch):
    """A tab-separated format registered in one place: the spec accepts it, a run writes it, resume repairs and reads it,
    and real data reads it."""
    import csv

    import sdgen
    from sdgen import formats
    from sdgen.realdata import read_real

    from fake_engines import CopyingEngine
    from sdgen.engines import register_engine
    from conftest import shop_spec

    class TsvWriter(formats.CsvWriter):
        def __init__(self, path, columns, append=False):
            formats._TextWriter.__init__(self, path, columns, append)
            self._csv = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore", delimiter="\t")
            if self._file.tell() == 0:
                self._csv.writeheader()
                self._sync()

    def read_tsv(path):
        import pandas as pd

        return pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t")

    monkeypatch.setitem(formats.FORMATS, ".tsv", formats.Format(".tsv", TsvWriter, read_tsv,
                                                               lambda p: formats._cut_torn_tail(p, formats._complete_csv_prefix)))  # fmt: skip
    register_engine("copying", CopyingEngine)
    spec = sdgen.build_spec(shop_spec(tmp_path, output="out.tsv", sample_size=10), base_dir=tmp_path)
    summary = sdgen.generate(spec, backend="copying")
    text = (tmp_path / "out.tsv").read_text()
    assert text.splitlines()[0].startswith("text\tlabel\t") and summary.written == 10
    with (tmp_path / "out.tsv").open("a") as f:
        f.write("torn row without its end")
    resumed = sdgen.generate(spec, backend="copying", resume=True)  # repairs the torn tail, reads the rows
    assert resumed.written == 10 and (tmp_path / "out.tsv").read_text() == text
    assert len(read_real(tmp_path / "out.tsv")) == 10
    assert ".tsv" in formats.suffixes()
