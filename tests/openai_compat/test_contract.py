"""The adapter contract as a wall: `openai_compat.upstreams` is a leaf package that knows nothing of the pool.

Its modules read credentials through their own `UpstreamCredential` protocol, so they import neither
`tokens` nor `mirror` nor the site (directly or through another module of the project), and no two of them
import each other in a circle. The registry, on the pipeline's side, has an adapter for every kind.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from openai_compat.registry import UPSTREAMS
from tokens.models import Kind

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "openai_compat.upstreams"
PROJECT = {"openai_compat", "tokens", "mirror", "chat2api_site", "common"}
FORBIDDEN = ("tokens", "mirror", "chat2api_site")
# Modules of the project the adapters reach through others; none of them may lead back to the pool.
FORBIDDEN_FAR = ("tokens", "mirror", "openai_compat.registry", "openai_compat.services")


def source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports_of(module: str) -> set[str]:
    """Every module of the project that `module` imports anywhere (also under TYPE_CHECKING or in a def)."""
    path = source_of(module)
    if path is None:
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            found.add(base)  # `from a.b import c`: c is a submodule when it has a file of its own
            found.update(f"{base}.{a.name}" for a in node.names if source_of(f"{base}.{a.name}"))
    return {name for name in found if name.split(".")[0] in PROJECT}


def absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    head = ".".join(parts[: len(parts) - node.level + 1])
    return f"{head}.{node.module}" if node.module else head


def adapter_modules() -> list[str]:
    folder = ROOT.joinpath(*PACKAGE.split("."))
    return sorted(PACKAGE if p.stem == "__init__" else f"{PACKAGE}.{p.stem}" for p in folder.glob("*.py"))


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def reachable(start: str) -> Iterator[tuple[str, list[str]]]:
    """Each project module `start` loads, with the import chain that leads to it."""
    seen, todo = {start}, [(start, [start])]
    while todo:
        module, chain = todo.pop()
        for name in sorted(imports_of(module) - seen):
            seen.add(name)
            yield name, [*chain, name]
            todo.append((name, [*chain, name]))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph` (each found once from its first module on a depth-first walk)."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])
    return found


def test_the_adapters_import_nothing_of_the_pool_the_page_or_the_site() -> None:
    direct = {m: sorted(n for n in imports_of(m) if under(n, FORBIDDEN)) for m in adapter_modules()}
    assert {m: names for m, names in direct.items() if names} == {}
    far = {m: chain for m in adapter_modules() for name, chain in reachable(m) if under(name, FORBIDDEN_FAR)}
    assert far == {}, "an adapter reaches the pool through: " + "; ".join(" → ".join(c) for c in far.values())


def test_no_import_circle_inside_the_package() -> None:
    modules = adapter_modules()
    graph = {m: {n for n in imports_of(m) if n in modules and n != PACKAGE} for m in modules}
    assert cycles(graph) == []


def test_the_check_sees_a_circle_and_a_forbidden_import() -> None:
    """The walls above would hold vacuously if the parser missed imports: it finds what a real module has."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert f"{PACKAGE}.chatgpt_files" in imports_of(f"{PACKAGE}.chatgpt_web")  # `from package import module`
    assert under("tokens.pool", FORBIDDEN) and "tokens.pool" in imports_of("openai_compat.files")


def test_every_credential_kind_has_an_adapter() -> None:
    assert set(UPSTREAMS) == set(Kind.values)
