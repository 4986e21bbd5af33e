"""A run's identity without importing torch: recipe + data fingerprint + the trainer's code salt.

The code salt is derived, as ``joblib.Memory`` derives a cached function's
identity from its code: the hash of the source of the trainer's module and of
every ``harness`` module it imports, transitively, read from disk by path (the
modules are parsed, never imported). Comments and docstrings are left out, so
a change that cannot alter what runs produce does not orphan stored runs; any
other change to the training code invalidates them by itself.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
import sys
from pathlib import Path

from harness import extensions as plugins
from harness.data import catalog
from harness.recipe import Recipe, RecipeError

PACKAGE_ROOT = Path(__file__).resolve().parent
#: the built-in trainers, ``name: "module:Class"`` (the form of an entry point): the one registry.
#: Torch-free, so a run's key (whose salt hashes the trainer's module) needs no torch;
#: ``harness.trainers.TRAINERS`` instantiates them.
BUILTIN_TRAINERS = {
    "mlp": "harness.trainers.mlp:MLPTrainer",
    "airbench": "harness.trainers.airbench:AirbenchTrainer",
    "scale_invariant": "harness.trainers.scale_invariant:ScaleInvariantTrainer",
    "toy2d": "harness.trainers.toy2d:Toy2DTrainer",
    "gd": "harness.trainers.gd:GDTrainer",
    "sched": "harness.trainers.schedules:ScheduleTrainer",
    "paper_nets": "harness.trainers.paper_nets:PaperNetsTrainer",
}


def module_path(module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*parts)
    for candidate in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _imports(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    # identity itself decides keys, not what a run computes
    return {m for m in out if (m == "harness" or m.startswith("harness.")) and not m.startswith(__name__)}


@functools.lru_cache(maxsize=None)
def _module_code(path: Path, stamp: int) -> tuple[str, frozenset[str]]:
    # ``stamp`` (mtime) keys the cache, so an edited file is re-read in a long-lived process
    tree = ast.parse(path.read_text(), filename=str(path))
    deps = frozenset(_imports(tree))
    return ast.dump(_strip_docstrings(tree), annotate_fields=False), deps


def code_closure(module: str) -> dict[str, str]:
    """``{module path relative to harness/: normalised code}`` of ``module`` and its harness imports."""
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        path = module_path(todo.pop())
        if path is None:
            continue  # ``from harness.x import name``: the name, not a module
        rel = str(path.relative_to(PACKAGE_ROOT))
        if rel in seen:
            continue
        code, deps = _module_code(path, path.stat().st_mtime_ns)
        seen[rel] = code
        todo.extend(deps)
    return seen


#: (package root, module) → (the closure's files and their mtimes, the hash): planning keys
#: hundreds of recipes, and a stat per file is far cheaper than re-hashing the code
_salt_cache: dict[tuple[Path, str], tuple[tuple[tuple[Path, int], ...], str]] = {}


def _stamps(files: tuple[Path, ...]) -> tuple[tuple[Path, int], ...]:
    return tuple((f, f.stat().st_mtime_ns) for f in files)


def code_salt(trainer: str) -> str:
    """``<trainer>-<hash>`` of the code the trainer's runs depend on."""
    if trainer not in BUILTIN_TRAINERS:
        raise RecipeError(f"unknown trainer {trainer!r}; known: {sorted(BUILTIN_TRAINERS)}")
    module = BUILTIN_TRAINERS[trainer].split(":")[0]
    cached = _salt_cache.get((PACKAGE_ROOT, module))
    if cached is not None and _stamps(tuple(f for f, _ in cached[0])) == cached[0]:
        return f"{trainer}-{cached[1]}"
    closure = code_closure(module)
    h = hashlib.sha256()
    for rel, code in sorted(closure.items()):
        h.update(rel.encode() + b"\0" + code.encode() + b"\0")
    digest = h.hexdigest()[:16]
    _salt_cache[PACKAGE_ROOT, module] = (_stamps(tuple(PACKAGE_ROOT / rel for rel in closure)), digest)
    return f"{trainer}-{digest}"


def run_salt(recipe: Recipe) -> str:
    """The code salt in ``recipe``'s key: derived for built-in trainers, declared by the others."""
    if recipe.trainer in BUILTIN_TRAINERS:
        return code_salt(recipe.trainer)
    # a trainer registered at run time (tests) lives in harness.trainers, which is then imported
    # already; looking there only in that case keeps built-in keys free of torch
    registered = getattr(sys.modules.get("harness.trainers"), "TRAINERS", {})
    trainer = registered.get(recipe.trainer) or plugins.load(plugins.TRAINER_GROUP, recipe.trainer)
    if trainer is None:
        known = sorted(set(BUILTIN_TRAINERS) | set(registered) | set(plugins.names(plugins.TRAINER_GROUP)))
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {known} "
                          f"(a package adds one through a {plugins.TRAINER_GROUP!r} entry point)")
    return str(trainer.salt)


#: A floating-point perturbation of training, for measuring which decisions are fragile
#: (``python -m harness confirm --perturb``): its runs are other runs, so it is part of the key.
PERTURB_ENV = "LRLAWS_PERTURB"
PERTURBATIONS = {"threads": "two intra-op threads on the CPU instead of one (another summation order)"}


def perturbation() -> str:
    """The perturbation in force ('' for none); an unknown one is an error naming the known ones."""
    value = os.environ.get(PERTURB_ENV, "")
    if value and value not in PERTURBATIONS:
        raise RecipeError(f"{PERTURB_ENV}={value!r} is not a perturbation; known: {sorted(PERTURBATIONS)} "
                          f"(or leave it unset)")
    return value


#: the fingerprint of data that is not there: ``--plan`` lists such runs; nothing trains them
ABSENT = "absent"


#: appended to the salt of runs trained through ``torch.compile``: a compiled run has not been shown
#: to be the same run as the eager one on every device, so the two never share a key. The suffix
#: names the compile options: runs compiled before ``emulate_precision_casts`` diverged on CUDA, and
#: a store that holds them must not serve them to a compile with the fix.
COMPILED = "\0compiled:emulate_precision_casts"


def recipe_key(recipe: Recipe, data_dir: Path | None = None, absent_ok: bool = False, compiled: bool = False) -> str:
    """The store key of ``recipe``'s runs on the data under ``data_dir`` (``compiled``: trained through torch.compile).

    Raises ``FileNotFoundError`` (with the fix) when the data is not there,
    unless ``absent_ok``: a key of data nobody can read names runs that cannot exist.
    """
    if not catalog.known(recipe.dataset):
        # a plug-in data set declares its identity (its salt) instead of being fingerprinted
        data_salt = plugins.dataset_salt(recipe.dataset)
        if data_salt is None:
            raise RecipeError(f"unknown dataset {recipe.dataset!r}; built in: {sorted((*catalog.CONSTRUCTED, *catalog.PACKAGED, *catalog.ON_DISK))}, "
                              f"{plugins.DATASET_GROUP} entry points: {plugins.names(plugins.DATASET_GROUP)}")
        return recipe.key(run_salt(recipe) + (COMPILED if compiled else "") + f"\0plugin-data:{recipe.dataset}:{data_salt}")
    try:
        data = catalog.fingerprint(recipe.dataset, data_dir)
    except FileNotFoundError:
        if not absent_ok:
            raise
        data = ABSENT
    perturb = perturbation()
    return recipe.key(run_salt(recipe) + (COMPILED if compiled else "") + ("\0data:" + data if data else "")
                      + (f"\0perturb:{perturb}" if perturb else ""))
