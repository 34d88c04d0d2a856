"""Files read back by another process or a resumed run: whole or absent, logs without a torn last line."""

import json
import os
import subprocess
import sys

from kfgrpo.files import CRASH_ENV, append_lines, read_jsonl, write_atomic, write_json


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1})
    write_atomic(path, b'{"a": 2}')
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_torn_last_line_is_dropped_and_repaired(tmp_path):
    path = tmp_path / "log.jsonl"
    append_lines(path, [json.dumps({"step": 1}), json.dumps({"step": 2})])
    with open(path, "a") as fh:
        fh.write('{"step": 3, "rew')  # killed mid-write
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert path.read_text().endswith('"rew')  # reading alone changes nothing
    assert read_jsonl(path, repair=True) == [{"step": 1}, {"step": 2}]
    append_lines(path, [json.dumps({"step": 3})])  # the next append starts a line of its own
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_crash_point_kills_at_the_named_passage_only(tmp_path):
    code = (
        "from kfgrpo.files import crash_point\n"
        "for i in range(3):\n"
        "    crash_point('step'); crash_point('other')\n"
        f"    open({str(tmp_path / 'passed')!r}, 'a').write(str(i))\n"
    )
    run = lambda spec: subprocess.run([sys.executable, "-c", code], env={**os.environ, CRASH_ENV: spec})  # noqa: E731
    assert run("step:2").returncode == -9 and (tmp_path / "passed").read_text() == "0"
    (tmp_path / "passed").unlink()
    assert run("nowhere").returncode == 0 and (tmp_path / "passed").read_text() == "012"
