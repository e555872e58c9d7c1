"""Test-session setup shared by every test (and doctest) of the repository.

Two settings are made here, before ``symnn`` is first imported — and only here: no test
module sets them again.

* **Poisoned buffers** (``SYMNN_POISON=1``): every compiled kernel call first fills the
  buffers the kernel writes (outputs, gradient, work buffer) with NaN, so generated code
  that reads a value it never wrote fails its test with NaN instead of passing with a
  plausible leftover from an earlier call (see ``symnn.codegen.model.compile_model``).
  Export ``SYMNN_POISON=0`` to run without it.
* **One kernel cache per session**: unless ``SYMNN_CACHE_DIR`` is set, the session
  compiles into a fresh temporary directory (removed at the end), so tests never read
  kernels that another checkout or an older version of symnn left in ``~/.cache/symnn``.
  Set ``SYMNN_CACHE_DIR`` to a directory of your own to keep a warm cache between runs.
  Subprocesses started by tests inherit the setting; a test that needs a cache of its own
  passes ``cache_dir=`` (or its own ``SYMNN_CACHE_DIR``) explicitly.  So do pytest-xdist's
  workers (``-n 2``, the README's command): this file runs in the controlling process
  before they start, so they share its cache (symnn writes cache files atomically) and
  only the controller removes it.

The ``slow`` marker (registered in ``pyproject.toml``) marks the long tests; the default
run includes them, ``python -m pytest -q -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("SYMNN_POISON", "1")
# issue 16 (callpath): no automatic ahead-of-time builds left running by tests
# (symnn.codegen._aotauto); tests/test_aot.py asks for builds explicitly
os.environ.setdefault("SYMNN_AOT_BUILD", "0")

_OWN_CACHE: str | None = None
if not os.environ.get("SYMNN_CACHE_DIR"):
    _OWN_CACHE = tempfile.mkdtemp(prefix="symnn-test-cache-")
    os.environ["SYMNN_CACHE_DIR"] = _OWN_CACHE


def pytest_report_header(config) -> str:
    """Say where this session's kernels go, and whether buffers are poisoned."""
    where = (f"{_OWN_CACHE} (fresh, removed at the end)" if _OWN_CACHE is not None
             else f"{os.environ['SYMNN_CACHE_DIR']} (SYMNN_CACHE_DIR)")
    return f"symnn: kernel cache {where}; SYMNN_POISON={os.environ['SYMNN_POISON']}"


def pytest_unconfigure(config) -> None:
    """Remove the session's own kernel cache (never a directory the user named)."""
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
