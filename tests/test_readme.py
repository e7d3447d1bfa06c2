"""The README and every page of docs/ stay true to the code: their commands are the ones that are run, their links
resolve, their code compiles and names what exists, and their examples run (on meta tensors: argument checks, fake
implementations and output shapes, no computation).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import torch
from packaging.requirements import Requirement

import triton_convt

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# perf_reports/README.md, the report's column reference, is a page of the docs too.
PAGES = [README, *DOCS, ROOT / "perf_reports" / "README.md"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@dataclass
class Block:
    page: Path
    lang: str
    text: str
    line: int  # the line of the opening fence, 1-based

    def __repr__(self) -> str:
        return f"{page_id(self.page)}:{self.line} ```{self.lang}"


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.S | re.M)


def blocks(page: Path, lang: str | None = None) -> list[Block]:
    text = page.read_text()
    found = [Block(page, m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
    return [b for b in found if lang is None or b.lang == lang]


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return FENCE.sub("", page.read_text())


def all_blocks(lang: str) -> list[Block]:
    return [b for page in PAGES for b in blocks(page, lang)]


def test_every_block_names_its_language():
    # An unnamed fence would be checked by nothing below.
    known = {"bash", "python", "text"}
    assert all(b.lang in known for page in PAGES for b in blocks(page)), [b for p in PAGES for b in blocks(p)]


# The README: its commands are the ones CI runs, its length, its links.


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_ones():
    commands = [b.text for b in blocks(README, "bash")]
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "triton-convt-report" in main_job
    # The test block: the install line, the quick tier and the full tier, each a line CI runs as it stands.
    install, quick, full = tests.strip().splitlines()
    assert "pip install" in install and "pytest" in quick and "-m full" not in quick and quick + " -m full" == full
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert all(line in ci_lines for line in (install, quick, full))


def test_readme_is_at_most_150_lines_and_links_every_page_of_docs():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    linked = {target.split("#")[0] for _, target in LINK.findall(text)}
    assert {page_id(page) for page in DOCS} <= linked


def test_layout_advice_lives_in_one_docs_section():
    # docs/design.md#layouts is the one place that says how each layout runs (it will change as NCHW inputs do);
    # the README only links there.
    text = README.read_text()
    assert text.count("docs/design.md#layouts") == 1 and "NCHW" not in text
    assert "layouts" in anchors(ROOT / "docs" / "design.md")


# Links and paths.

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.*)$", prose(page), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    for text, target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), (page_id(page), text, target)
        assert ROOT in resolved.parents or resolved == ROOT, target  # inside the repository
        if anchor:
            assert resolved.suffix == ".md" and anchor in anchors(resolved), (page_id(page), target)


# A path in a code span (`kernels/phase_gemm.py`, `autotune_configs/`, `tools/workmodel.py`, `cpu/profile/`) is
# looked up in the repository, the package and perf_reports/; a bare module name (`hotloop.py`) anywhere in the
# package or the tests. Bare names of other files are what the tools write (`profile.json`), not checked.
PATH_ROOTS = [ROOT, ROOT / "triton_convt", ROOT / "perf_reports"]
PATH_SPAN = re.compile(r"`((?:[\w.-]+/)+(?:[\w.-]+\.\w+)?|[\w-]+\.py)`")


def path_exists(path: str) -> bool:
    if "/" not in path:
        return any((ROOT / folder).rglob(path) for folder in ("triton_convt", "tests"))
    return any((root / path).exists() for root in PATH_ROOTS)


# perf_reports/README.md names the folders a GPU run would write (`nvidia-h100-80gb-hbm3/`): links only there.
@pytest.mark.parametrize("page", [README, *DOCS], ids=page_id)
def test_every_repository_path_in_a_code_span_exists(page):
    spans = PATH_SPAN.findall(prose(page))
    missing = [path for path in spans if not path.startswith(("~", "/", "$")) and not path_exists(path)]
    assert not missing, page_id(page)


# Python: compiled, every triton_convt name resolved, every keyword in the signature, the examples run on meta.


@pytest.mark.parametrize("block", all_blocks("python"), ids=repr)
def test_every_python_block_compiles(block):
    compile(block.text, repr(block), "exec")


def resolve(dotted: str):
    """The object ``triton_convt.a.b`` names (importing submodules on the way), or raise."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if not hasattr(obj, part) and inspect.ismodule(obj):
            importlib.import_module(".".join(parts[: i + 1]))
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_triton_convt_name_exists(page):
    text = page.read_text()
    for dotted in set(re.findall(r"\btriton_convt(?:\.\w+)+", text)) - {"triton_convt.X"}:  # X: a placeholder
        if (ROOT / dotted.replace(".", "/")).exists() or (ROOT / (dotted.replace(".", "/") + ".py")).exists():
            continue
        if dotted.endswith((".py", ".json", ".md")):  # a file name: the path test checks it
            continue
        resolve(dotted)
    for op in set(re.findall(r"\btorch\.ops\.triton_convt\.(\w+)", text)) - {"X"}:
        assert hasattr(torch.ops.triton_convt, op), op


def imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name, for ``import triton_convt`` and ``from triton_convt import X``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name: a.name for a in node.names if a.name.startswith("triton_convt")})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("triton_convt"):
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    return names


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return base and f"{base}.{node.attr}"
    return None


@pytest.mark.parametrize("block", all_blocks("python"), ids=repr)
def test_every_call_into_triton_convt_binds_to_its_signature(block):
    tree = ast.parse(block.text)
    local = imported_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (name := dotted_name(node.func)) is None:
            continue
        head, _, rest = name.partition(".")
        if head not in local:
            continue
        target = resolve(local[head] + (f".{rest}" if rest else ""))
        if not callable(target) or isinstance(target, type(torch.ops.triton_convt)):
            continue
        args = [None] * len(node.args)
        kwargs = {kw.arg: None for kw in node.keywords if kw.arg}
        try:
            inspect.signature(target).bind(*args, **kwargs)
        except TypeError as e:
            raise AssertionError(f"{block} line {node.lineno}: {name}: {e}") from e


@pytest.mark.parametrize("block", all_blocks("text"), ids=repr)
def test_every_signature_block_is_the_functions_signature(block):
    # ```text blocks that write a call signature (`conv_transpose2d(input, weight, bias=None, ...)`) give the
    # function's parameters, their order, kinds and defaults, as inspect sees them.
    text = " ".join(block.text.split())
    if not re.fullmatch(r"\w+\(.*\)", text):
        return
    name = text.partition("(")[0]
    written = ast.parse(f"def {text}: pass").body[0].args
    real = inspect.signature(getattr(triton_convt, name))
    positional = [a.arg for a in written.args]
    keyword = [a.arg for a in written.kwonlyargs]
    kinds = {p.name: p.kind for p in real.parameters.values()}
    assert positional + keyword == list(real.parameters), (block, list(real.parameters))
    assert all(kinds[a] == inspect.Parameter.POSITIONAL_OR_KEYWORD for a in positional), block
    assert all(kinds[a] == inspect.Parameter.KEYWORD_ONLY for a in keyword), block
    defaults = dict(zip(positional[len(positional) - len(written.defaults) :], written.defaults, strict=True))
    defaults.update({a.arg: d for a, d in zip(written.kwonlyargs, written.kw_defaults, strict=True) if d is not None})
    for arg, default in defaults.items():
        assert real.parameters[arg].default == ast.literal_eval(default), (block, arg)
    assert all(real.parameters[a].default is inspect.Parameter.empty for a in kinds if a not in defaults), block


SHAPE_COMMENT = re.compile(r"#\s*(\([\d, ]+\))")


def run_on_meta(block: Block, namespace: dict, device: str = "meta") -> None:
    """Run ``block`` statement by statement with "cuda" made ``device``, checking each ``# (shape)`` comment against
    the shape of the variable its line assigns."""
    source = block.text.replace('"cuda"', f'"{device}"')
    lines = source.splitlines()
    for statement in ast.parse(source).body:
        code = compile(ast.Module([statement], []), repr(block), "exec")
        exec(code, namespace)  # noqa: S102 - the docs' own examples
        for node in ast.walk(statement):
            if not isinstance(node, ast.Assign) or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                continue
            comment = SHAPE_COMMENT.search(lines[node.end_lineno - 1])
            if comment:
                shape = tuple(namespace[node.targets[0].id].shape)
                assert shape == ast.literal_eval(comment[1]), (block, node.lineno, shape)


def example_device(block: Block) -> str:
    """Meta, but CPU for a block that builds a fused optimizer (torch's fused AdamW refuses meta tensors; the
    block runs no forward, so the CPU costs nothing)."""
    return "cpu" if "fused=True" in block.text else "meta"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=page_id)
def test_the_python_examples_run_on_meta_tensors_and_give_the_shapes_they_say(page):
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", triton_convt.ops.TorchFallbackWarning)
        for block in blocks(page, "python"):
            run_on_meta(block, namespace, example_device(block))


def test_the_shape_check_sees_a_wrong_shape():
    block = Block(README, "python", 'import torch\nx = torch.empty(2, 3, device="cuda")  # (2, 4)\n', 1)
    with pytest.raises(AssertionError):
        run_on_meta(block, {})


# Commands: every console script, pytest option, marker, pip extra and pin, and file a command names is real, and
# its options parse.


class Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def script_parser(script: str, monkeypatch) -> argparse.ArgumentParser:
    """The argument parser that ``script``'s main builds (its main stops at ``parse_args``)."""
    module, _, function = SCRIPTS[script].partition(":")
    main = getattr(importlib.import_module(module), function)

    def stop(self, *args, **kwargs):
        raise Parsed(self)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", stop)
        with pytest.raises(Parsed) as parsed:
            main([])
    return parsed.value.parser


def commands(text: str) -> list[list[str]]:
    """The simple commands of a shell text: lines split on ``&&``, each as its words."""
    found = []
    for line in text.splitlines():
        for command in line.split("&&"):
            if words := shlex.split(command, comments=True):
                found.append(words)
    return found


def check_pip(words: list[str]) -> None:
    assert words[:3] == ["python", "-m", "pip"] and words[3] == "install", words
    extras = PYPROJECT["project"]["optional-dependencies"]
    ranges = {Requirement(r).name: Requirement(r).specifier for r in PYPROJECT["project"]["dependencies"]}
    for extra in extras.values():
        ranges.update(
            {Requirement(r).name: Requirement(r).specifier for r in extra if Requirement(r).name not in ranges}
        )
    for word in words[4:]:
        if word.startswith("-"):
            assert word in ("-q", "-e"), f"pip option {word}"
        elif word.startswith("."):  # this checkout, with extras that pyproject.toml defines
            for extra in re.fullmatch(r"\.(?:\[(.*)\])?", word)[1].split(",") if "[" in word else []:
                assert extra in extras, word
        else:  # a pin, inside the range pyproject.toml admits
            name, version = word.split("==")
            assert name in ranges and version in ranges[name], (word, ranges.get(name))


def check_pytest(words: list[str], pytestconfig) -> None:
    args = words[words.index("pytest") + 1 :]
    namespace, unknown = pytestconfig._parser.parse_known_and_unknown_args(args)
    assert not unknown, (words, unknown)
    markers = {line.split(":")[0].split("(")[0] for line in pytestconfig.getini("markers")}
    for name in re.findall(r"\w+", namespace.markexpr or ""):
        assert name in markers | {"not", "and", "or"}, (words, name)
    for path in getattr(namespace, "file_or_dir", None) or []:
        assert (ROOT / path.split("::")[0]).exists(), path


def check_command(words: list[str], pytestconfig, monkeypatch, whole: bool) -> None:
    """``whole``: the words are a whole command (a bash block), parsed as such; else a code span's fragment, whose
    options must be the command's."""
    if words[0] in SCRIPTS:
        parser = script_parser(words[0], monkeypatch)
        if whole:
            try:
                parser.parse_args(words[1:])
            except SystemExit as e:
                raise AssertionError(f"{shlex.join(words)}: argparse refused it") from e
        else:
            for word in words[1:]:
                if word.startswith("-"):
                    assert word.split("=")[0] in parser._option_string_actions, (words, word)
    elif words[:3] == ["python", "-m", "pip"]:
        check_pip(words)
    elif "pytest" in words[:3]:
        check_pytest(words, pytestconfig)
    elif words[:2] == ["python", "-m"] and words[2].startswith("triton_convt."):  # a module run as a script
        spec = importlib.util.find_spec(words[2])
        assert spec, words
        if spec.submodule_search_locations:  # a package runs its __main__
            assert importlib.util.find_spec(words[2] + ".__main__"), words
        else:
            assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(), words
    elif words[0] == "bash":
        assert (ROOT / words[1]).is_file(), words
    elif words[0] == "ruff":
        help_text = subprocess.run([sys.executable, "-m", "ruff", words[1], "--help"], capture_output=True,
                                   text=True, check=True).stdout  # fmt: skip
        assert all(w in help_text for w in words[2:] if w.startswith("-")), words
    else:
        raise AssertionError(f"a command test_readme does not know: {shlex.join(words)}")


@pytest.mark.parametrize("block", all_blocks("bash"), ids=repr)
def test_every_command_of_a_bash_block_is_real_and_parses(block, pytestconfig, monkeypatch):
    for words in commands(block.text):
        check_command(words, pytestconfig, monkeypatch, whole=True)


COMMAND_SPAN = re.compile(r"`((?:triton-convt-[\w-]+|python -m [\w.]+)(?: [^`]*)?)`")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_in_a_code_span_is_real(page, pytestconfig, monkeypatch):
    for span in COMMAND_SPAN.findall(prose(page)):
        words = shlex.split(span.replace("DIR", "/tmp/dir").replace("[", "").replace("]", ""))
        check_command(words, pytestconfig, monkeypatch, whole=False)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_console_script_is_named_in_the_docs(script):
    assert any(script in page.read_text() for page in PAGES), script


def test_the_installed_scripts_are_the_pyprojects():
    installed = {e.name for e in metadata.entry_points(group="console_scripts") if e.name.startswith("triton-convt")}
    assert installed == set(SCRIPTS)


# The one number the docs keep about the layer set's standing: how many layers meet issue 19's rule.


def test_the_rules_count_in_the_docs_is_the_work_model_tests():
    # tests/test_workmodel.py holds the model to OVER_RULE (the layers that miss the rule, exactly); the docs say
    # how many meet it and name the others, in one paragraph of docs/static-profile.md.
    from triton_convt.tools import workmodel

    source = (ROOT / "tests" / "test_workmodel.py").read_text()
    over_rule = next(
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "OVER_RULE"
    )
    text = (ROOT / "docs" / "static-profile.md").read_text()
    paragraph = text.split("### Issue 19's rule", 1)[1].split("\n#", 1)[0]
    meet, total = map(int, re.search(r"(\d+) of the (\d+) layers meet the rule", paragraph).groups())
    assert (meet, total) == (len(workmodel.LAYERS) - len(over_rule), len(workmodel.LAYERS))
    assert all(name in paragraph for name in over_rule)
    everywhere = "".join(page.read_text() for page in PAGES)
    assert len(re.findall(r"\d+ of the \d+ layers", everywhere)) == 1  # one place
