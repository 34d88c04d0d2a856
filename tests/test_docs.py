"""The README and docs/ tell one truth: every relative link and anchor resolves, and every `kfgrpo ...` and `make ...`
command in their code blocks names a real subcommand or target and real flags."""

import io
import re
import shlex
import shutil
import subprocess
from contextlib import redirect_stdout
from functools import cache
from pathlib import Path

import pytest

from kfgrpo.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces → -."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def _links(page: Path):
    text = FENCE.sub("", page.read_text())
    for m in LINK.finditer(text):
        target = m.group(1)
        if not re.match(r"^[a-z]+://|^mailto:", target):
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    assert page.read_text().strip(), page
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert dest.suffix == ".md", f"{page.name}: anchor into a non-markdown file: {target}"
            assert anchor in _anchors(dest), f"{page.name}: no heading for #{anchor} in {dest.name}"


def test_linked_files_and_quoted_results_are_not_git_ignored():
    """A figure or record the docs link, or one that benchmarks/docs_results.py reads, ships with a clone: a file that
    exists here but is git-ignored passes every other check and is missing from everyone else's checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = {
        (page.parent / t.partition("#")[0]).resolve() for page in PAGES for t in _links(page) if t.partition("#")[0]
    }
    paths |= {ROOT / "benchmarks" / "results" / name for name in _docs_results().RECORDS}
    inside = sorted(str(p.relative_to(ROOT)) for p in paths if p.is_relative_to(ROOT))
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *inside], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert ignored == [], f"linked or quoted but git-ignored (add them to .gitignore's exceptions): {ignored}"


def _commands(page: Path):
    """Command lines of the page's code blocks (continuations joined), without comments."""
    for block in FENCE.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^\$\s+", "", line)
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                try:
                    words = shlex.split(part)
                except ValueError:  # an unbalanced quote inside a longer example: read it word by word
                    words = part.split()
                while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
                    words = words[1:]
                if words and words[0] in ("kfgrpo", "make"):
                    yield words


@cache
def _help(command: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main([command, "--help"])
    return out.getvalue()


@cache
def _targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_real_subcommands_targets_and_flags(page):
    for words in _commands(page):
        if words[0] == "make":
            for word in words[1:]:
                if not word.startswith("-") and "=" not in word:
                    assert word in _targets(), f"{page.name}: `make {word}` is not a Makefile target"
            continue
        if len(words) < 2 or words[1] in ("-h", "--help", "-V", "--version"):
            continue
        command = words[1]
        assert command in COMMANDS, f"{page.name}: `kfgrpo {command}` is not a subcommand"
        for word in words[2:]:
            if word.startswith("--") and len(word) > 2:
                flag = word.split("=", 1)[0]
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", _help(command)), (
                    f"{page.name}: `kfgrpo {command}` has no flag {flag}"
                )


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert "make train" in text and "make test" in text


def _docs_results():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_results", ROOT / "benchmarks" / "docs_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quoted_results_are_rendered_from_their_files():
    """Every number the docs quote from benchmarks/results/*.json (values, rounding, splits, seed counts, and the
    computed verdicts: "not shown", how many runs beat 2 SE) is the text benchmarks/docs_results.py renders."""
    assert _docs_results().missing() == []


def test_a_quoted_result_edited_by_hand_fails(tmp_path):
    module = _docs_results()
    for page in sorted(set(module.PAGES.values())):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((ROOT / page).read_text())
    module.ROOT = tmp_path
    assert module.missing() == []
    page = tmp_path / "docs" / "tad.md"
    page.write_text(page.read_text().replace("(+1.96 SE)", "(+2.0 SE)", 1))  # a rounding that turns 1.96 into 2
    assert [m.split(":\n")[0] for m in module.missing()] == ["docs/tad.md: tad-learn pooled"]
