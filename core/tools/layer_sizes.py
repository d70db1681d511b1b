"""The layers of ``core`` (``docs/architecture.md``) and their sizes in lines of code.

    python -m core.tools.layer_sizes [ROOT]

prints the lines of each layer of ``core`` and of each distribution under ``plugins/`` and
``contrib/`` (tests and build output left out). :data:`LAYERS` is the one written statement of
which module belongs to which layer; the import-direction tests read it too.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

#: The layers from the bottom up: ``(name, module prefixes)``; a module belongs to the layer of
#: its longest matching prefix. An import may point to its own layer or one below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kernel", ("core", "core.contracts", "core.hookspecs", "core.registry", "core.plugins",
                "core.config", "core.config_references", "core.structures", "core.masks",
                "core.errors")),
    ("library", ("core.models", "core.data", "core.evaluation", "core.visualization",
                 "core.weights", "core.analysis")),
    ("engine", ("core.engine",)),
    ("vis hooks", ("core.visualization.hooks",)),
    ("tools", ("core.tools", "core.integrations")),
    ("shell", ("core.run", "core.cli", "core.api")),
)
OUTSIDE_ROOTS = ("plugins", "contrib")


def layer_of(module: str) -> str:
    """The layer of a dotted module name of ``core`` (``core.models.heads`` -> ``library``).

    The package ``core`` itself is the kernel; any other module must fall under a prefix.
    """
    best, best_length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or (prefix != "core" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = name, len(prefix)
    if best is None:
        raise KeyError(f"{module}: no layer of core.tools.layer_sizes.LAYERS holds it")
    return best


def layer_rank(name: str) -> int:
    """Position of a layer from the bottom (kernel 0)."""
    return [layer for layer, _ in LAYERS].index(name)


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a ``.py`` file below ``root`` (``core/a/__init__.py`` is
    ``core.a``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a ``core`` module in the file ``path``, nested
    ones and those under ``TYPE_CHECKING`` too (a type-only import is still a dependency)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "core"]
    return found


def count_lines(path: Path) -> int:
    """Non-blank lines of a file."""
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def product_files(directory: Path) -> list[Path]:
    """The ``.py`` files a distribution installs: tests and build output left out."""
    return sorted(p for p in directory.rglob("*.py")
                  if not {"tests", "build"} & set(p.relative_to(directory).parts)
                  and not p.name.startswith("test_"))


def layer_sizes(root: Path) -> dict[str, int]:
    """Non-blank lines per layer of ``root/core``."""
    sizes = {name: 0 for name, _ in LAYERS}
    for path in product_files(root / "core"):
        sizes[layer_of(module_name(path, root))] += count_lines(path)
    return sizes


def distribution_sizes(root: Path) -> dict[str, int]:
    """Non-blank lines of each distribution under ``plugins/`` and ``contrib/``."""
    sizes = {}
    for outside in OUTSIDE_ROOTS:
        for project in sorted((root / outside).glob("*/pyproject.toml")):
            directory = project.parent
            sizes[f"{outside}/{directory.name}"] = sum(
                count_lines(p) for p in product_files(directory))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.tools.layer_sizes",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=".", help="the repository root")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "core").is_dir():
        print(f"error: {root}: no core/ directory here (give the repository root)",
              file=sys.stderr)
        return 2
    sizes = layer_sizes(root)
    for name, lines in sizes.items():
        print(f"core {name:<10} {lines:>7,} lines")
    print(f"core total      {sum(sizes.values()):>7,} lines")
    for name, lines in distribution_sizes(root).items():
        print(f"{name:<26} {lines:>7,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
