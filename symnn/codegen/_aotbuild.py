"""Building a model's ahead-of-time module (:mod:`symnn.codegen.aot`) with :mod:`numba.pycc`.

Each exported function is the Python function of a Numba dispatcher compiled with that
dispatcher's own options (``error_model``, ``fastmath``, ``nogil``...) for this CPU (the
host's name and features, as Numba's JIT uses), into one extension module with Numba's
runtime and helper library.  The calls a kernel makes to the runtime blocks
(:mod:`symnn.codegen.numba.runtime`) link the blocks' own compiled code, as in the JIT.

The module is written to a temporary name in the cache folder and renamed into place, and
its record (key, SHA-256, what it exports) is written after it, atomically: a reader sees a
whole entry or none.  Any failure returns False and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["build", "entry_paths", "CHECKS", "FORMAT"]

FORMAT = 1
#: The global of the products' switch (:mod:`symnn.codegen.numba.gemm`) that a module
#: defines and :mod:`symnn.codegen.aot` sets (``gemm._SYMBOL``; not imported here, so that
#: reading this module imports no Numba)
GEMM_FLAG = "symnn_gemm_tiles"
#: The globals holding the address of the threaded products (``gemm._SPLIT_SYMBOLS``): a
#: module defines them as 0, so its products run on the calling thread (no threading
#: runtime is linked into a module)
GEMM_SPLIT = ("symnn_gemm_split_f64", "symnn_gemm_split_f32")
#: The Python-level checks compiled into every module: name → (module, argument codes).
#: Codes: ``a`` a 1-D array of the model's dtype, ``L`` of int64, ``i`` an int, ``f`` a
#: float, ``b`` a bool.
CHECKS = {
    "_nonfinite": ("symnn.codegen._validate", "a"),
    "_bad_probability_row": ("symnn.codegen._validate", "aif"),
    "_one_hot": ("symnn.codegen._validate", "Lia"),
    "_values_ok": ("symnn.codegen._fastpath", "aaaifb"),
}


def _root(cache_dir) -> Path:
    from symnn.codegen.cache import default_cache_dir

    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "symnn-aot"


def entry_paths(key: str, cache_dir=None) -> tuple[str, Path, Path]:
    """``(module name, extension path, record path)`` of an entry."""
    name = "symnn_aot_" + key[:32]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    root = _root(cache_dir)
    return name, root / (name + suffix), root / (name + ".json")




def _host_codegen(name: str):
    from numba.core import codegen as CG

    class _HostAOTCodegen(CG.AOTCPUCodegen):
        """Numba's ahead-of-time code generator, for this CPU with all its features (the
        default is a generic CPU: different vector code, different last bits)."""

        def _customize_tm_features(self):
            return self._get_host_cpu_features()

    return _HostAOTCodegen(name, cpu_name="host")


def _compiler_class():
    """A pycc module compiler whose exports are compiled with their own Numba options and
    for the host CPU."""
    from numba.core import cpu, sigutils  # noqa: F401  (sigutils: used by pycc)
    from numba.core.compiler import Flags, compile_extra
    from numba.core.registry import cpu_target
    from numba.pycc import compiler as PC

    class _Compiler(PC.ModuleCompiler):
        def __init__(self, entries, name, use_nrt=True, **_):
            super().__init__(entries, name, use_nrt)
            self.context = cpu_target.target_context.subtarget(
                _internal_codegen=_host_codegen(name), aot_mode=True)

        def _cull_exports(self):
            # pycc's own, with one change: each entry's flags come from its dispatcher
            return _cull(self, Flags, compile_extra, cpu.CPUTargetOptions)

    return _Compiler


def _flags(Flags, Options, options: dict):
    flags = Flags()
    Options.parse_as_flags(flags, {k: v for k, v in options.items() if k != "cache"})
    flags.no_compile = True
    flags.nrt = True
    return flags


def _cull(self, Flags, compile_extra, Options):
    """pycc's ``_ModuleCompiler._cull_exports`` (Numba 0.68), exporting Python wrappers,
    with per-entry flags."""
    from numba.core.runtime import nrtdynmod

    self.exported_function_types = {}
    self.function_environments = {}
    self.environment_gvs = {}
    self.extra_environments = {}
    library = self.context.codegen().create_library(self.module_name)
    nrt_module, _ = nrtdynmod.create_nrt_module(self.context)
    library.add_ir_module(nrt_module)
    for entry in self.export_entries:
        disp = entry.function
        cres = compile_extra(self.typing_context, self.context, disp.py_func,
                             entry.signature.args, None,
                             _flags(Flags, Options, disp.targetoptions), locals={},
                             library=library)
        for gv in library._final_module.functions:
            if gv.name.startswith("__excinfo_unwrap_args"):
                gv.linkage = "linkonce_odr"
        cres.library.get_function(cres.fndesc.llvm_func_name).linkage = "internal"
        wrapper = cres.library.get_function(cres.fndesc.llvm_cpython_wrapper_name)
        wrapper.name = self._mangle_method_symbol(entry.symbol)
        wrapper.linkage = "external"
        self.exported_function_types[entry] = cres.target_context.call_conv.get_function_type(
            cres.fndesc.restype, cres.fndesc.argtypes)
        self.function_environments[entry] = cres.environment
        self.environment_gvs[entry] = cres.fndesc.env_name
    wrapper_module = library.create_ir_module("wrapper")
    self._emit_python_wrapper(wrapper_module)
    library.add_ir_module(wrapper_module)
    library.finalize()
    _strip_optnone(library)
    from llvmlite.binding import Linkage

    for fn in library.get_defined_functions():
        if fn.name not in self.dll_exports:
            if fn.linkage in {Linkage.private, Linkage.internal}:
                fn.visibility = "default"
            else:
                fn.visibility = "hidden"
    return library


def _strip_optnone(library) -> None:
    """Generate the runtime blocks' copies at full optimisation, as the JIT generated the
    blocks themselves.

    A kernel's module holds a copy of every runtime block it calls, marked ``optnone``
    (:func:`symnn.codegen.numba.runtime._no_inline`) so that LLVM does not optimise it
    again; in the JIT those copies never run (the block's own code, loaded first, does),
    but here they are the only code — and ``optnone`` also makes LLVM's back end select
    instructions without optimisation (no fused multiply-add where the block allows one):
    other last bits.  The module is optimised by now; dropping ``optnone`` only changes
    the back end's choices, which then are the JIT's.  The switch of the products
    (:data:`GEMM_FLAG`), an external global in the JIT, is defined here."""
    import re

    import llvmlite.binding as ll

    text = str(library._final_module)
    flag = re.compile(rf"^@{GEMM_FLAG} = external ((?:local_unnamed_addr )?global i32)", re.M)
    split = re.compile(rf"^@({'|'.join(GEMM_SPLIT)}) = external "
                       r"((?:local_unnamed_addr )?global i64)", re.M)
    if "optnone" not in text and not flag.search(text) and not split.search(text):
        return
    groups = re.compile(r"^(attributes #\d+ = \{)([^}]*)(\})", re.M)
    text = groups.sub(lambda m: m.group(1) + re.sub(r"\boptnone\b", "", m.group(2))
                      + m.group(3), text)
    # the products' switch (symnn.codegen.numba.gemm): the JIT links it to the process's
    # flag by name; here the module defines it, and symnn.codegen.aot keeps it in step
    text = flag.sub(rf"@{GEMM_FLAG} = \1 0", text)
    text = split.sub(r"@\1 = \2 0", text)
    module = ll.parse_assembly(text)
    module.verify()
    library._final_module = module


def _signature(argtys):
    """A pycc export signature for ``argtys``; the return type is left to inference
    (:func:`_cull` compiles with none given), so no kernel is compiled twice."""
    from numba.core import types, typing

    return typing.signature(types.none, *argtys)


def _exports(kernels: dict, dtype: str) -> tuple[dict, list, list]:
    """``({kind: symbol}, [check names], [(symbol, signature, dispatcher)])`` for the
    kernels ``{kind: (dispatcher, number of arguments)}``."""
    from numba.core import types

    from symnn.codegen.numba.runtime import prepare_runtime

    scalar = getattr(types, dtype)
    codes = {"a": types.Array(scalar, 1, "C"), "L": types.Array(types.int64, 1, "C"),
             "i": types.int64, "f": types.float64, "b": types.boolean}
    prepare_runtime(dtype)
    entries, symbols, checks = [], {}, []
    for kind, (disp, nargs) in sorted(kernels.items()):
        sym = "k_" + kind
        entries.append((sym, _signature([codes["a"]] * nargs), disp))
        symbols[kind] = sym
    for name, (where, argcodes) in sorted(CHECKS.items()):
        disp = getattr(importlib.import_module(where), name)
        disp = getattr(disp, "_symnn_original", disp)
        entries.append((name, _signature([codes[c] for c in argcodes]), disp))
        checks.append(name)
    from symnn.codegen.numba._aotprobe import _blas_probe

    entries.append(("_blas_probe", _signature([types.Array(types.float64, 1, "C"),
                                               types.Array(types.float32, 1, "C")]),
                    _blas_probe))
    return symbols, checks, entries


def _compile(name: str, folder: Path, entries: list) -> Path:
    """Build the extension module ``name`` in ``folder``; its path."""
    from numba.pycc import CC

    Compiler = _compiler_class()

    class _CC(CC):
        def _compile_object_files(self, build_dir):
            compiler = Compiler(self._export_entries, self._basename, self._use_nrt)
            compiler.external_init_function = self._init_function
            obj = os.path.join(build_dir, os.path.splitext(self._output_file)[0] + ".o")
            compiler.write_native_object(obj, wrap=True)
            return [obj], compiler.dll_exports

    cc = _CC(name, source_module=__name__)
    cc.output_dir = str(folder)
    for sym, sig, disp in entries:
        cc.export(sym, sig)(disp)
    cc.compile()
    return folder / cc.output_file


def build(model: Any, key: str, cache_dir=None, timeout: float = 900) -> bool:
    """Build and store the ahead-of-time module of ``model`` under ``key``, in a child
    process (a compiler crash cannot take this one down); False (and nothing stored) when
    it cannot be built."""
    try:
        proc = subprocess.run([sys.executable, "-c", child_code()],
                              input=json.dumps(payload(model, key, cache_dir)),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def child_code() -> str:
    """The ``python -c`` code of the child process (the same symnn as this one's)."""
    return _CHILD.format(root=_ROOT)


def payload(model: Any, key: str, cache_dir=None) -> dict:
    """What the child process needs to build ``model``'s entry ``key`` (plain data)."""
    return {"key": key, "module_key": model._module_key, "source": model.generated.source,
            "dtype": model.dtype.name,
            "cache_dir": None if cache_dir is None else os.fspath(cache_dir),
            "kernels": {kind: [k.name, len(k.args)]
                        for kind, k in model.generated.kernels.items()}}


def _build_here(payload: dict) -> bool:
    """The child's part of :func:`build`: import the generated module, compile, store."""
    from symnn.codegen.cache import load_module

    key, cache_dir, dtype = payload["key"], payload["cache_dir"], payload["dtype"]
    name, so, rec = entry_paths(key, cache_dir)
    so.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=so.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = load_module(payload["source"], payload["module_key"], cache_dir=cache_dir)
            kernels = {kind: (getattr(module, fn), int(n))
                       for kind, (fn, n) in payload["kernels"].items()}
            symbols, checks, entries = _exports(kernels, dtype)
            built = _compile(name, tmp, entries)
        digest = hashlib.sha256(built.read_bytes()).hexdigest()
        os.replace(built, so)
        record = {"format": FORMAT, "key": key, "sha256": digest, "kernels": symbols,
                  "checks": checks, "dtype": dtype}
        part = tmp / "record.json"
        part.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(part, rec)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """The child process: the payload of :func:`build` on stdin."""
    sys.exit(0 if _build_here(json.loads(sys.stdin.read())) else 1)


#: The folder holding this symnn package (the child imports the same symnn)
_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD = ("import sys; sys.path.insert(0, {root!r}); "
          "from symnn.codegen._aotbuild import main; main()")
