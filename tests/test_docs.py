"""Every code block of README.md and docs/*.md is run or checked, and every option is documented.

The scheme, per fenced block (the word after the opening fence decides):

- ``python`` / ``toml`` right after ``<!-- include: PATH -->``: a copy of a tutorial file; it must
  equal the file, and tests/test_tutorial.py runs every such file (it lists them).
- other ``python`` blocks are executed, in order, in one namespace per page.
- other ``toml`` blocks must parse.
- ``sh``: each command (lines joined at a trailing backslash, split at ``&&``, ``;`` and ``|``)
  starts with a known program. For pytest (also ``python3 dev.py laws|test``, ``make laws|test``)
  and ``python -m harness CMD``, every ``--option`` it names must be in that command's ``--help``.
- ``text``: an excerpt of the committed smoke baseline: each line is a line of
  results/baseline/report.md.

Any other fence, an unlabelled one, or an indented code block (which no test would see) fails.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.S | re.M)
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n$")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# programs a shell block may name whose options are not checked (ordinary shell and pip)
PLAIN = {"export", "cat", "ls", "sort", "tail", "exit", "cd", "pip", "bash", "status="}  # status=$? loses its $?
# a mode of `bench` with its own parser, not listed by `bench --help`
MODES = {"bench": ["--acceptance"]}


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(language, body, included path or None) of every fenced block of a page."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        inc = INCLUDE.search(text[: m.start()][-300:])
        out.append((m.group(1), m.group(2), inc.group(1) if inc else None))
    return out


def indented_code(page: Path) -> list[str]:
    """Lines that open an indented code block: four spaces after a blank line, outside fences and lists."""
    lines, found, fenced = page.read_text().splitlines(), [], False
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and i and not lines[i - 1].strip() and line.startswith("    ") and line.strip():
            found.append(line)
    return found


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


@functools.cache
def help_text(command: tuple[str, ...]) -> str:
    """A command's --help; () is pytest with the lrlaws plugin."""
    if not command:
        return run("-m", "pytest", "-p", "no:cacheprovider", "--help")
    return run("-m", "harness", *command, "--help")


def help_options(command: tuple[str, ...]) -> frozenset[str]:
    return frozenset(OPTION.findall(help_text(command)))


@functools.cache
def harness_commands() -> list[tuple[str, ...]]:
    """Every `python -m harness` command, with the sub-commands of those that take one."""
    names = re.findall(r"^  (\S+) ", run("-m", "harness", "--help"), re.M)
    assert names, "python -m harness --help lists no commands"
    out: list[tuple[str, ...]] = []
    for name in names:
        out.append((name,))
        out += [(name, mode) for mode in MODES.get(name, [])]
        sub = re.search(r"positional arguments:\n  \{([\w,-]+)\}\n", help_text((name,)))
        if sub and name == "store":  # store's choice is a sub-command; make-data's is a data kind
            out += [(name, s) for s in sub.group(1).split(",")]
    return out


def command_of(words: list[str]) -> tuple[str, ...] | None:
    """The command whose --help a shell command's options are checked against, or None if unchecked."""
    if words[0] == "pytest" or words[:2] in (["python3", "dev.py"], ["make", "laws"], ["make", "test"]):
        return ()
    if len(words) > 3 and words[0].endswith("python") and words[1:3] == ["-m", "harness"]:
        cmd = [words[3]]
        if len(words) > 4 and words[3] == "store" and not words[4].startswith("-"):
            cmd.append(words[4])
        cmd += [m for m in MODES.get(words[3], []) if m in words]
        return tuple(cmd)
    assert words[0] in PLAIN, f"shell command {' '.join(words)!r}: unknown program; add it to PLAIN if it is plain shell"
    return None


def check_shell(body: str) -> None:
    text = re.sub(r"\\\n\s*", " ", body)
    for line in text.splitlines():
        code = line.split(" #", 1)[0].strip()
        if not code or code.startswith("#"):
            continue
        for part in re.split(r"&&|;|\|(?![^\[]*\])", code):
            words = re.sub(r"[\"'()$]", " ", part).split()
            if not words:
                continue
            command = command_of(words)
            if command is None:
                continue
            unknown = set(OPTION.findall(part)) - help_options(command) - set(MODES.get(command[0] if command else "", []))
            assert not unknown, f"{part.strip()!r} names {sorted(unknown)}, not options of {command or 'pytest'}"


def check_page(page: Path) -> None:
    assert not indented_code(page), f"{page.name}: indented code block {indented_code(page)[0]!r}; fence it (```sh)"
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    baseline = {line.strip() for line in (ROOT / "results" / "baseline" / "report.md").read_text().splitlines()}
    for lang, body, included in blocks(page):
        where = f"{page.name}: ```{lang} block {body[:60]!r}"
        if included:
            assert lang in ("python", "toml"), where
            assert body == (ROOT / included).read_text(), f"{page.name}'s copy of {included} differs; paste the file in"
        elif lang == "python":
            exec(compile(body, f"{page.name}:python", "exec"), namespace)  # noqa: S102 - the docs' own examples
        elif lang == "toml":
            tomllib.loads(body)
        elif lang == "sh":
            check_shell(body)
        elif lang == "text":
            missing = [ln for ln in body.splitlines() if ln.strip() and ln.strip() not in baseline]
            assert not missing, f"{where}: not lines of results/baseline/report.md: {missing}"
        else:
            raise AssertionError(f"{where}: no test covers this kind of block; use python, toml, sh or text")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_code_block_of_the_page_is_run_or_checked(page):
    check_page(page)


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250, "the README is at most 250 lines; move detail to docs/"


def documented() -> str:
    return "\n".join(p.read_text() for p in PAGES)


def undocumented(options: set[str] | frozenset[str], text: str) -> list[str]:
    return [o for o in sorted(options) if not re.search(rf"(?<![\w-]){o}(?![\w-])", text)]


def test_an_option_the_pages_do_not_name_is_found():
    assert undocumented({"--tier", "--store", "--tiers"}, "`--tier smoke`, `--store-dir`") == ["--store", "--tiers"]


def test_every_plugin_option_is_documented():
    text = documented()
    group = re.search(r"^lrlaws.*?:\n(.*?)\n\S", help_text(()), re.S | re.M)
    assert group, "pytest --help shows no lrlaws group: is the plugin installed?"
    ours = set(re.findall(r"^  (--[a-z][a-z0-9-]*)", group.group(1), re.M))
    assert {"--tier", "--gpus", "--store"} <= ours
    assert not undocumented(ours, text), f"document these options in README.md or docs/: {undocumented(ours, text)}"


def test_every_harness_command_option_is_documented():
    text, missing = documented(), []
    for command in harness_commands():
        missing += [f"{' '.join(command)} {o}" for o in undocumented(help_options(command) - {"--help"}, text)]
    assert ("store", "prune") in harness_commands() and ("bench", "--acceptance") in harness_commands()
    assert not missing, f"document these options in README.md or docs/: {missing}"


BAD_PAGES = {
    "unlabelled fence": "```\nls\n```\n",
    "unknown language": "```js\n1\n```\n",
    "indented code": "Text.\n\n    pytest laws/\n",
    "made-up pytest option": "```sh\npytest laws/ --tiers smoke\n```\n",
    "made-up harness option": "```sh\npython -m harness compare OLD NEW --write-all\n```\n",
    "unknown program": "```sh\nrm -rf results/\n```\n",
    "python that raises": "```python\nraise ValueError('stale example')\n```\n",
    "broken toml": "```toml\n[project\n```\n",
    "text not in the baseline": "```text\n    total  claims: 99 holding\n```\n",
    "stale include": "<!-- include: tests/tutorial/my_law.py -->\n```python\nprint('old')\n```\n",
}


@pytest.mark.parametrize("kind", BAD_PAGES)
def test_a_page_with_an_unchecked_or_stale_block_fails(kind, tmp_path):
    page = tmp_path / "bad.md"
    page.write_text("# Bad\n\n" + BAD_PAGES[kind])
    with pytest.raises(Exception):
        check_page(page)


def test_a_good_page_passes(tmp_path):
    page = tmp_path / "good.md"
    page.write_text("# Good\n\n```sh\npytest laws/ --tier smoke --gpus 0 && python -m harness store prune --keep-days 3\n"
                    "```\n\n```python\nx = 1\n```\n\n```python\nassert x == 1\n```\n")
    check_page(page)
