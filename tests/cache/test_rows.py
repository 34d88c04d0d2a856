import string

import datasets

from kfgrpo.cache import map_text


def _rows(tmp_path):
    datasets.Dataset.from_dict({"q": ["a", "b"]}).save_to_disk(str(tmp_path / "d"))
    return datasets.load_from_disk(str(tmp_path / "d"))  # on disk: `map` writes and reuses cache files there


def _target(q):  # calls a function of another module, as sft.py's map calls chronosynth.traces.tally_trace
    return {"t": string.capwords(q)}


def test_map_text_never_returns_rows_built_by_other_code(tmp_path, monkeypatch):
    """A function the mapped one calls changes (an upgraded SFT trace): the rows follow the new code."""
    rows = _rows(tmp_path)
    assert map_text(rows, _target, input_columns=["q"])["t"] == ["A", "B"]
    monkeypatch.setattr(string, "capwords", lambda q: q + "!")
    assert map_text(rows, _target, input_columns=["q"])["t"] == ["a!", "b!"]


def test_datasets_map_cache_would_return_them(tmp_path, monkeypatch):
    """Why map_text refuses the cache: datasets' fingerprint does not see a called function's code (this test fails
    if a datasets upgrade starts to see it, and map_text may then use the cache again)."""
    rows = _rows(tmp_path)
    first = rows.map(_target, input_columns=["q"])["t"]
    monkeypatch.setattr(string, "capwords", lambda q: q + "!")
    assert rows.map(_target, input_columns=["q"])["t"] == first == ["A", "B"]
