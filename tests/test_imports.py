"""The package's import graph: no cycle (deferred imports included), layers import no upper level.

``import_graph`` reads every ``import`` of ``osc_tf/`` with ``ast``, inside functions
too: a deferred import still ties two modules, it only hides the cycle until run time.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _module_name(root: pathlib.Path, path: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (anywhere in its source)."""
    files = {_module_name(root, p): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from a import b` imports the module a.b if there is one, else a.
                candidates = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in files:  # `import a.b.c` of a module a.b
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_sees_deferred_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name, text in {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    from .sub import c\n",  # deferred
        "sub/__init__.py": "",
        "sub/c.py": "import pkg.a\n",
        "d.py": "import os\nfrom pkg.sub import c\n",
    }.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.sub.c"} and graph["pkg.d"] == {"pkg.sub.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    (pkg / "sub/c.py").write_text("import os\n")
    assert find_cycle(import_graph(pkg)) is None


def test_osc_tf_has_no_import_cycle():
    cycle = find_cycle(import_graph(REPO / "osc_tf"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _modules_after(statement: str) -> set[str]:
    """The modules loaded by ``statement`` in a fresh interpreter on this checkout."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement, allowed",
    [
        # every layer module: nothing of osc_tf above osc_tf.layers
        (
            "import pkgutil, importlib, osc_tf.layers\n"
            "for m in pkgutil.iter_modules(osc_tf.layers.__path__):\n"
            "    importlib.import_module('osc_tf.layers.' + m.name)",
            ("osc_tf", "osc_tf.layers"),
        ),
        # parsing gin files: the library's names, no training, evaluation, export or
        # figures (matplotlib itself is loaded by Keras 3.15: keras.src.visualization)
        (
            "from osc_tf import config\nconfig.parse(['gin/model/default.gin'])",
            (
                "osc_tf",
                "osc_tf.layers",
                "osc_tf.data",
                "osc_tf.config",
                "osc_tf.configurables",
                "osc_tf.model",
                "osc_tf.losses",
                "osc_tf.matching",
                "osc_tf.schedules",
                "osc_tf.optimizers",
            ),
        ),
    ],
    ids=["layers", "config"],
)
def test_lower_levels_import_nothing_above_them(statement, allowed):
    modules = _modules_after(statement)
    ours = {m for m in modules if m == "osc_tf" or m.startswith("osc_tf.")}
    above = sorted(m for m in ours if m not in allowed and not m.startswith(allowed[1:]))
    assert not above, f"imported above the level: {above}"


def test_importing_osc_tf_changes_nothing_in_the_process():
    code = (
        "import os, matplotlib\n"
        "calls, env = [], dict(os.environ)\n"
        "matplotlib.use = lambda *args, **kwargs: calls.append(args)\n"
        "import osc_tf, osc_tf.evaluation.figures, osc_tf.training\n"
        "print(dict(os.environ) == env, calls == [])\n"
    )
    unset = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC")
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]  # no variable set, no backend chosen
