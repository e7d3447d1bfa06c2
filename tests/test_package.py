"""The package's shape: the runtime path does not load the tools, nothing imports in a cycle, no module grows past
~400 lines, every console script answers --help with its own name, and the CPU fallback says it is one."""

import ast
import os
import subprocess
import sys
import warnings
from importlib import import_module
from pathlib import Path

import pytest
import tomllib
import torch
import torch.nn.functional as F

import triton_convt
from triton_convt.ops import TorchFallbackWarning, dispatch
from triton_convt.tools import cli, layers, workmodel

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "triton_convt"
MAX_LINES = 400


def package_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (top level or inside a function). An import
    of a module's own parent package is left out: the parent is always initialised before its submodule."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in modules and not name.startswith(target + ".") and target != name:
                found.add(target)
    return found


def test_import_loads_no_tool_and_no_matplotlib():
    code = "import sys, triton_convt; print('\\n'.join(sys.modules))"
    for interpret in ("0", "1"):
        env = dict(os.environ, TRITON_INTERPRET=interpret, TRITON_DEFAULT_FP_FUSION="1")
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        loaded = done.stdout.split()
        assert "triton_convt.ops.conv_transpose" in loaded  # the runtime path itself is loaded
        assert not [m for m in loaded if m.startswith("triton_convt.tools")]
        assert not [m for m in loaded if m.split(".")[0] == "matplotlib"]  # (torch itself imports tqdm)


def test_runtime_modules_never_import_the_tools():
    modules = package_modules()
    for name, path in modules.items():
        if not name.startswith("triton_convt.tools"):
            tools = [m for m in imports_of(name, path, modules) if m.startswith("triton_convt.tools")]
            assert not tools, (name, tools)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports) as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_no_import_cycles():
    modules = package_modules()
    cycle = find_cycle({name: imports_of(name, path, modules) for name, path in modules.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    # As tools.layers and tools.workmodel once did: one imports the other at the top, the other inside a function.
    (tmp_path / "layers.py").write_text("def parse():\n    from .workmodel import Layer\n")
    (tmp_path / "workmodel.py").write_text("from . import layers\n")
    modules = {"triton_convt.layers": tmp_path / "layers.py", "triton_convt.workmodel": tmp_path / "workmodel.py"}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {
        "triton_convt.layers": {"triton_convt.workmodel"},
        "triton_convt.workmodel": {"triton_convt.layers"},
    }
    layers, workmodel = "triton_convt.layers", "triton_convt.workmodel"
    assert find_cycle(graph) in ([layers, workmodel, layers], [workmodel, layers, workmodel])


def test_no_module_is_over_400_lines():
    long = {
        name: n for name, path in package_modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_the_tools_are_console_scripts():
    assert set(console_scripts()) >= {"triton-convt-report", "triton-convt-profile", "triton-convt-tune",
                                      "triton-convt-demo"}  # fmt: skip


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_every_console_script_answers_help_under_its_own_name(script, capsys):
    module, function = console_scripts()[script].split(":")
    assert module.startswith("triton_convt.tools.")
    with pytest.raises(SystemExit) as done:
        getattr(import_module(module), function)(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {script} ")


def test_an_unknown_layer_is_an_argparse_error_listing_the_valid_ones(capsys):
    from triton_convt.tools.report import cli as report_cli

    with pytest.raises(SystemExit) as done:
        report_cli.main(["--layers", "no-such-layer", "--only", "model"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: triton-convt-report") and "no-such-layer" in err
    assert all(spec.name in err for spec in layers.load())


@pytest.mark.parametrize("text, capability", [("sm80", 80), ("sm90", 90), ("sm_90", 90), ("90", 90), ("SM80", 80)])
def test_one_arch_convention(text, capability):
    assert cli.arch(text) == capability and cli.arch_name(capability) == f"sm{capability}"


@pytest.mark.parametrize("text", ["gfx942", "GFX942", " gfx942"])
def test_an_amd_target_is_named_by_its_gfx_processor(text):
    # triton's GPUTarget takes an AMD arch as its processor name; the name is also the config file's.
    assert cli.arch(text) == "gfx942" and cli.arch_name("gfx942") == "gfx942" and not cli.is_cuda("gfx942")


@pytest.mark.parametrize("text", ["sm75", "gfx90a", "hopper", ""])
def test_an_unknown_arch_names_the_valid_ones(text):
    with pytest.raises(Exception, match="choose from sm80, sm90, gfx942"):
        cli.arch(text)


def test_the_work_model_and_the_report_give_one_byte_count():
    # dcgan-g1 has no bias and no fused activation: its unfused chain is the conv alone.
    from triton_convt.tools.report import cpu

    for spec in layers.load():
        rows = {r["impl"]: r for r in cpu.model_rows([spec], ["float16"]) if r["device"] == "H100 SXM"}
        moved = workmodel.spec_traffic(spec, 2)
        assert rows["unfused chain"]["unfused_bytes"] == moved["unfused"] == rows["unfused chain"]["bytes"]
        assert rows["triton_convt (fused)"]["bytes"] == moved["fused"]
        table = workmodel.report(["default"], torch.float16).splitlines()
        column = [c.strip() for c in next(line for line in table if line.startswith("| layer |")).split("|")]
        table_row = next(line for line in table if line.startswith(f"| {spec.name} |"))
        assert table_row.split("|")[column.index("unfused MB")].strip() == f"{moved['unfused'] / 1e6:.1f}"


def test_cpu_without_the_interpreter_falls_back_to_torch_and_says_so_once(monkeypatch):
    monkeypatch.setattr(dispatch, "interpreter_active", lambda: False)
    monkeypatch.setattr(dispatch, "_warned", False)
    x, w = torch.randn(1, 4, 5, 5, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
    before = triton_convt.launch.launch_count()
    with pytest.warns(TorchFallbackWarning, match="torch's own implementation"):
        y = triton_convt.conv_transpose2d(x, w, stride=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchFallbackWarning)
        again = triton_convt.conv_transpose2d(x, w, stride=2, activation="relu")
    assert triton_convt.launch.launch_count() == before  # torch computed both
    torch.testing.assert_close(y, F.conv_transpose2d(x, w, stride=2))
    torch.testing.assert_close(again, F.relu(F.conv_transpose2d(x, w, stride=2)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure on a machine without CUDA")
def test_device_cuda_without_cuda_fails_at_once_naming_cuda():
    cmd = [sys.executable, "-m", "pytest", "--device", "cuda", "-q", "-p", "no:cacheprovider", "tests/test_shapes.py"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode not in (0, 5), done.stdout[-2000:]
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "CUDA" in errors[0] and "passed" not in done.stdout
