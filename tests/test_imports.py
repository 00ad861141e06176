"""The package's shape: imports run one way, the teaching core stays small and plain.

A student reads the modules in the order of LAYERS below; each module may import only modules of its own layer
or of earlier ones, so that nothing a chapter needs is defined in a later chapter. These tests read the source
with `ast` (no module is run for the graph) and fail with the offending file, line and edge.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "var_tutorial"

# Reading order, one layer per row: a module imports only from its own row or rows above it.
LAYERS = [
    ("config", "data", "records", "powerlaw"),  # foundations: configs, images, results/*.json, fits (no models)
    ("codebook", "quantizer", "vqvae"),  # the tokenizer
    ("transformer",),  # VAR and the raster baseline
    ("sampling", "editing", "classifier"),  # generation, zero-shot editing; the judge of samples
    ("fast",),  # the speed layer, applied to the core from outside
    ("metrics", "pretrained"),  # measuring; shipped weights
    ("train", "distributed"),  # training loops, DDP
    ("scaling", "bench", "exercises"),  # experiments built on training
    ("report",),  # docs tables from results/*.json
    ("viz", "widgets"),  # pictures and notebook controls
    ("cli", "__main__"),  # the command line
]
# The only imports allowed inside a function, each for start-up time, not to dodge a cycle: every command of the
# command line imports cli, so a heavy module that a single command needs is imported when that command runs.
LAZY = {
    ("cli.quickstart", "viz"): "matplotlib and the figure code add seconds; only the picture commands draw",
    ("cli.exercises", "exercises"): "nbformat, needed only by make-exercises",
}
CORE = ("codebook", "quantizer", "vqvae", "transformer", "sampling", "editing")
LAYER_OF = {name: i for i, row in enumerate(LAYERS) for name in row}


def modules() -> dict[str, Path]:
    """Dotted names below the package (``train.common``, ``cli``) -> their files."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def group(module: str) -> str:
    """The layer name of a module: a subpackage's modules count as the subpackage (``train.loop`` -> ``train``)."""
    return module.split(".")[0]


def package_imports(module: str, path: Path):
    """(line, imported module, at top level?) for every import of a var_tutorial module in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import x
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                if node.module:
                    targets.append(".".join([*base, node.module]))
                else:
                    targets += [".".join([*base, alias.name]) for alias in node.names]
            elif node.module and node.module.split(".")[0] == "var_tutorial":
                rest = node.module.split(".")[1:]
                targets += [".".join(rest)] if rest else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("var_tutorial.")]
        for target in targets:
            yield node.lineno, target.strip("."), id(node) in top_level


def edges():
    mods = modules()
    for module, path in mods.items():
        for line, target, top in package_imports(module, path):
            # `from .train import x` may name a module of a subpackage or a name in it: keep the longest module
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield module, target, path, line, top


def test_every_module_has_a_place_in_the_reading_order():
    unplaced = sorted({group(m) for m in modules()} - set(LAYER_OF))
    assert not unplaced, f"modules {unplaced} are in no row of LAYERS: add each where a reader meets it"


def test_imports_run_one_way():
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (layer {LAYER_OF[group(module)]}) imports "
             f"{target} (layer {LAYER_OF[group(target)]}), a later layer"
             for module, target, path, line, _ in edges()
             if group(module) in LAYER_OF and group(target) in LAYER_OF
             and LAYER_OF[group(target)] > LAYER_OF[group(module)]]
    assert not wrong, "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for module, target, *_ in edges():
        graph.setdefault(module, set()).add(target)
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_package_import_hides_inside_a_function():
    """An import placed inside a function to dodge a cycle hides the dependency from the reader (and from the
    tests above). Every import of a var_tutorial module sits at the top of its file, but for the few in LAZY."""
    hidden = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target} inside a function or class"
              for module, target, path, line, top in edges() if not top and (module, target) not in LAZY]
    assert not hidden, "\n".join(hidden)


@pytest.mark.parametrize("name", CORE)
def test_the_teaching_core_is_short_and_plain(name):
    path = PACKAGE / f"{name}.py"
    lines = path.read_text().count("\n")
    assert lines <= 300, f"{path.name} has {lines} lines: a core module stays <= 300 (move speed or tooling out)"
    speed = [target for module, target, *_ in edges() if module == name and group(target) == "fast"]
    assert not speed, f"{path.name} imports the speed layer {speed}: the speed layer is applied from outside"


def test_every_module_imports_on_its_own():
    names = sorted("var_tutorial." + m for m in modules())
    script = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("name", ["viz", "powerlaw", "records"])
def test_light_modules_stay_light(name):
    """The picture, fitting and bookkeeping modules do not drag in training, DDP or the sweep: a notebook that
    only plots should not load them."""
    script = (f"import sys, var_tutorial.{name}\n"
              "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
              "(['var_tutorial', 'train'], ['var_tutorial', 'distributed'], ['var_tutorial', 'scaling'])))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"importing var_tutorial.{name} loads {out.stdout.strip()}"


def test_the_readme_map_lists_the_modules_in_reading_order():
    """README's package table is the reading order: its rows never go back to an earlier layer."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme[readme.index("| module | holds |"):].split("\n\n")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    names = [name.split("/")[0].removesuffix(".py") for row in rows for name in
             (cell.strip("` ") for cell in row.split("|")[1].split(","))]
    layers = [LAYER_OF[n] for n in names if n in LAYER_OF]
    assert len(layers) == len(names), f"the README map names modules not in LAYERS: {set(names) - set(LAYER_OF)}"
    assert layers == sorted(layers), f"README's package map is out of reading order: {names}"
