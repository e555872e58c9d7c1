"""The error hierarchy: every deliberate error symnn raises is a SymnnError.

``symnn/errors.py`` promises that ``except symnn.SymnnError`` catches every error symnn
raises on purpose, and that each subclass also inherits the built-in it refines.  The
test below reads every module of the package (``ast``), finds every ``raise`` and every
construction of an exception class, resolves the class in the module's namespace and
checks it — so a new ``raise ValueError(...)`` anywhere fails here, naming file and line.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib
import pathlib
import pickle

import pytest

import symnn
from symnn import errors

ROOT = pathlib.Path(symnn.__file__).parent

#: Built-in exceptions symnn may raise on purpose, and why.
ALLOWED = {
    NotImplementedError: "abstract hooks of base classes, overridden by every subclass",
    KeyError: "mapping lookups (Equations.find, SymbolDict, kernel names): "
              "`except KeyError` is how a caller tests for a key",
    AttributeError: "module __getattr__ (PEP 562) and scikit-learn's available_if: "
                    "hasattr() must see False",
    ImportError: "an optional dependency (scikit-learn, matplotlib) is not installed",
    SystemExit: "the command line's exit status",
    argparse.ArgumentTypeError: "argparse turns it into a usage message with the option name",
    OSError: "file-system conditions keep their errno class (FileNotFoundError, …), so "
             "`except OSError` works as for open()",
}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        if name.endswith("__main__"):
            continue
        yield name, path


def _resolve(node: ast.expr, namespace: dict):
    """The object a Name / dotted Attribute refers to in a module namespace, or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    parts.reverse()
    if parts[0] in namespace:
        obj = namespace[parts[0]]
    elif hasattr(builtins, parts[0]):
        obj = getattr(builtins, parts[0])
    else:
        return None  # a local variable (re-raising a caught error) or a factory's result
    for attr in parts[1:]:
        obj = getattr(obj, attr, None)
    return obj


#: Built-in errors raised by a private helper to the one caller that converts them.
INTERNAL = {
    ("symnn/spec/parser.py", ValueError):
        "_number → Parser.atom turns it into a SpecError naming the column",
    ("symnn/printing/_breaking.py", ValueError):
        "the TeX group parser → its caller catches it and keeps the line unbroken",
}


def _caught_locally(node: ast.AST, parents: dict, cls: type, namespace: dict) -> bool:
    """True when ``node`` sits in the body of a ``try`` whose handler catches ``cls``."""
    child, up = node, parents.get(node)
    while up is not None:
        if isinstance(up, ast.Try) and child in up.body:
            for handler in up.handlers:
                types = handler.type
                elts = types.elts if isinstance(types, ast.Tuple) else [types]
                for t in elts:
                    caught = _resolve(t, namespace) if t is not None else BaseException
                    if isinstance(caught, type) and issubclass(cls, caught):
                        return True
        child, up = up, parents.get(up)
    return False


def _raised_classes():
    """(place, class) for every raise and every exception constructed in symnn/, except
    those caught by an enclosing ``try`` of the same function."""
    found = {}
    for name, path in _modules():
        module = importlib.import_module(name)
        namespace = vars(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            target = None
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            elif isinstance(node, ast.Call):
                target = node.func
            if target is None:
                continue
            obj = _resolve(target, namespace)
            if not (isinstance(obj, type) and issubclass(obj, BaseException)):
                continue
            if _caught_locally(node, parents, obj, namespace):
                continue
            place = path.relative_to(ROOT.parent).as_posix()
            found[(place, target.lineno, obj)] = None
    return list(found)


def _acceptable(cls: type) -> bool:
    if issubclass(cls, errors.SymnnError) or issubclass(cls, Warning):
        return True
    if cls.__name__.startswith("_"):  # private control flow, caught inside its module
        return True
    return any(issubclass(cls, allowed) and cls.__module__ in ("builtins", "argparse")
               for allowed in ALLOWED)


def test_every_deliberate_error_is_a_symnn_error():
    found = _raised_classes()
    assert len(found) > 300  # the walk sees the package (not an empty directory)
    bad = sorted(f"{place}:{line}: {cls.__module__}.{cls.__qualname__}"
                 for place, line, cls in found
                 if not _acceptable(cls) and (place, cls) not in INTERNAL)
    assert not bad, ("raise a symnn.errors class (subclassing the built-in it refines) "
                     "instead of:\n" + "\n".join(bad))


def test_the_walk_would_catch_a_plain_value_error():
    """The checker itself can fail: a raise of a bare ValueError is not acceptable."""
    assert not _acceptable(ValueError)
    assert not _acceptable(TypeError)
    assert not _acceptable(RuntimeError)
    assert _acceptable(errors.DataError)


@pytest.mark.parametrize("name", errors.__all__)
def test_each_error_class_refines_a_builtin(name):
    cls = getattr(errors, name)
    if cls is errors.SymnnError:
        return
    if cls is errors.SymnnWarning:
        assert issubclass(cls, UserWarning)
        return
    assert issubclass(cls, errors.SymnnError)
    builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in
               (Exception, BaseException, object)]
    assert builtin, f"{name} should also subclass the built-in it refines"
    # pickles (process pools, Dask) and keeps its message
    err = cls("message")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "message"


def test_moved_classes_are_the_same_objects_everywhere():
    from symnn.analysis.curvature import AnalysisError
    from symnn.codegen.cache import SymnnWarning
    from symnn.printing.document import LatexError

    assert SymnnWarning is errors.SymnnWarning is symnn.SymnnWarning
    assert LatexError is errors.LatexError is symnn.LatexError
    assert AnalysisError is errors.AnalysisError is symnn.AnalysisError
    assert issubclass(errors.LatexError, RuntimeError)
    assert issubclass(errors.ArgumentError, TypeError)


@pytest.mark.parametrize("call, cls", [
    (lambda: symnn.mlp([2, 2, 1]).compile().init(seed="x"), errors.ArgumentError),
    (lambda: symnn.mlp([2, 2, 1]).compile().init(seed=1.5), errors.ArgumentError),
    (lambda: symnn.mlp([2, 2, 1]).compile().init(seed=-1), errors.DataError),
    (lambda: symnn.load(None), errors.SymnnError),
    (lambda: symnn.loads_spec(None), errors.SymnnError),
    (lambda: symnn.mlp([2, 2, 1]).gradient(batch_size=2.5), errors.ArgumentError),
    (lambda: symnn.mlp([2, 2, 1]).gradient(batch_size=0), errors.SizeLimitError),
])
def test_plain_errors_of_the_api_are_symnn_errors(call, cls):
    with pytest.raises(cls) as info:
        call()
    assert isinstance(info.value, errors.SymnnError)
