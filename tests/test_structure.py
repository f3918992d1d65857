"""The package's shape: imports follow the data flow, one module owns the on-disk layout, and
modules and functions stay small enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autounet"

# Modules below every stage: any module may import them; they import only each other.
FOUNDATION = {"autounet", "version", "errors", "workspace", "hardware", "load", "locks", "parallel", "progress", "stopping"}
STAGES = {"io", "autoplan", "preprocess", "model", "inference", "postprocess", "training", "example_data"}
# The data flow: fingerprint -> plan -> preprocessed arrays -> trained folds -> predictions -> postprocessing.
ALLOWED = {
    "io": set(),
    "autoplan": {"io"},
    "preprocess": {"autoplan", "io"},
    "model": {"autoplan", "io"},  # io: the shared atomic writer for checkpoints and archives
    "inference": {"model", "preprocess", "autoplan", "io"},
    "postprocess": {"inference", "autoplan", "io"},
    "training": {"model", "inference", "postprocess.metrics", "postprocess.case_metrics", "postprocess.instances",
                 "preprocess", "autoplan", "io"},
    "example_data": {"io"},
    "report": STAGES,
    "runner": STAGES | {"report"},
    "predictor": {"inference", "postprocess", "model", "preprocess", "autoplan", "io"},  # a model in use
    "api": STAGES | {"report", "runner", "predictor"},
    "cli": {"api"},
    "__main__": {"cli"},
}

LAYOUT_NAMES = ("checkpoint_final", "checkpoint_best", "checkpoint_latest", "gt_segmentations", "_data.npy",
                "_seg.npy", "_locs.npz", "predicted_next_stage",
                "spending.json", "best_configuration.json", "cross_validation.json", "postprocessing.json",
                "training_log.txt", "progress.png", "plans.json", "splits.json", "fingerprint.json",
                "autounet_model.json", "run.json", "imagesTr", "labelsTr", "imagesTs", "labelsTs")
LAYOUT_SEGMENTS = re.compile(r"^/?(fold_.*|validation|cross_validation|report|raw|preprocessed|results)/?$")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _unit(module: str) -> str:
    """autounet.training.fold -> training; autounet -> autounet; autounet.api -> api."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "autounet"


def _imports(module: str, path: Path) -> set[str]:
    """Every autounet module imported anywhere in a file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "autounet"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "autounet":
                found |= {f"autounet.{a.name}" if a.name != "__version__" else "autounet" for a in node.names}
            elif node.module.split(".")[0] == "autounet":
                found.add(node.module)
    return found


PUBLIC = {"autounet.predictor"}  # what ``import autounet`` offers (lazily: autounet.Predictor)


def _allowed(importer: str, imported: str) -> bool:
    source, target = _unit(importer), _unit(imported)
    if importer == "autounet" and imported in PUBLIC:
        return True
    if target in FOUNDATION or source == target:
        return True
    if source in FOUNDATION:
        return False
    allowed = ALLOWED[source]
    return target in allowed or ".".join(imported.split(".")[1:3]) in allowed


def test_every_module_belongs_to_a_known_unit():
    units = {_unit(m) for m, _ in _modules()}
    assert units <= FOUNDATION | set(ALLOWED), units - FOUNDATION - set(ALLOWED)


def test_imports_follow_the_data_flow():
    wrong = [f"{m} imports {i}" for m, p in _modules() for i in sorted(_imports(m, p)) if not _allowed(m, i)]
    assert not wrong, "\n".join(wrong)


def test_the_import_check_can_fail():
    assert not _allowed("autounet.inference.run", "autounet.training.fold")
    assert not _allowed("autounet.autoplan.fingerprint", "autounet.preprocess.crop")
    assert not _allowed("autounet.training.validation", "autounet.postprocess.selection")
    assert not _allowed("autounet.cli", "autounet.training.config")
    assert not _allowed("autounet.workspace", "autounet.io.atomic")
    assert _allowed("autounet.training.steps", "autounet.postprocess.metrics")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            ids.add(id(body[0].value))
    return ids


def _layout_strings(path: Path) -> list[str]:
    """String constants naming layout files or folders, outside docstrings: a file name or a
    fold folder anywhere, a folder name when it is joined onto a path with ``/``."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    joined = {id(side) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
              for side in (node.left, node.right)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if (any(name in node.value for name in LAYOUT_NAMES) or node.value.startswith("fold_")
                    or (id(node) in joined and LAYOUT_SEGMENTS.match(node.value))):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    return found


def test_only_the_workspace_spells_out_the_layout():
    found = [f"{m}: {s}" for m, p in _modules() if m != "autounet.workspace" for s in _layout_strings(p)]
    assert not found, "\n".join(found)


def test_the_layout_check_can_fail(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""docstring naming checkpoint_final.pt is fine"""\n'
                     'a = folder / "validation"\nb = f"fold_{k}"\nc = {"report": 1}\nd = "x_data.npy"\n')
    assert sorted(s.split(": ", 1)[1] for s in _layout_strings(probe)) == ["'fold_'", "'validation'", "'x_data.npy'"]


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_modules_and_functions_are_small(module: str, path: Path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{module}: {len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            assert length <= MAX_FUNCTION_LINES or above.startswith("# long:"), \
                f"{module}.{node.name}: {length} lines (or say why in a '# long:' comment above it)"


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """autounet modules a file imports when it runs (function-level imports included, those under
    ``if TYPE_CHECKING:`` left out); ``from autounet.x import y`` counts y where it is a module."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in known:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs if subs else {node.module}
    return found


def _import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle():
    """No two modules import each other, directly or around a circle, not even inside a function:
    a circle closed by a function-level import is a seam that was not built."""
    modules = dict(_modules())
    graph = {m: _runtime_imports(p, set(modules)) - {m} for m, p in modules.items()}
    assert not _import_circles(graph), _import_circles(graph)


def test_the_circle_check_can_fail():
    assert _import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _import_circles({"a": {"b"}, "b": set()}) == []
