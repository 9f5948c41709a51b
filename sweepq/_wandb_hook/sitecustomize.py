"""Put first on a trial program's PYTHONPATH by sweepq's runner: connects `import wandb` to sweepq.

It costs a program that never imports wandb one tiny finder on `sys.meta_path` (it answers only
for the top-level name "wandb") and a look for the program's own sitecustomize, which is then
run as usual. When the program imports wandb, the real package is loaded first and then
`sweepq.wandb_bridge.patch` connects `wandb.init` / `wandb.log` to the trial. Nothing here
imports sweepq, yaml, redis or even typing until then (typing alone costs about 10 ms), and
nothing that Python's start-up has not loaded already: `from __future__`, `collections.abc` and
`importlib.machinery` cost a program that never imports wandb 5-6 ms together (annotations are
strings for that reason; the path finder and `module_from_spec` are taken from the import system
that is already running).
"""

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: it alone costs about 10 ms
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

_HERE = os.path.dirname(os.path.abspath(__file__))


class _WandbFinder:
    """A one-shot meta path finder for the name "wandb": find the real one, patch after load."""

    def find_spec(
        self, fullname: "str", path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if fullname != "wandb":
            return None
        import importlib.util

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec("wandb")
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        real_exec = loader.exec_module

        def exec_module(module: "ModuleType") -> None:
            real_exec(module)
            try:
                from sweepq import wandb_bridge

                wandb_bridge.patch(module)
            except Exception as err:  # noqa: BLE001 - the program must run even if we cannot connect
                print(f"sweepq: wandb.log values will not reach sweepq: {type(err).__name__}: {err}", file=sys.stderr)

        loader.exec_module = exec_module
        return spec


def _chain_own_sitecustomize() -> None:
    """Run the sitecustomize this file hides (a distro's or the user's), as Python would have."""
    bootstrap = sys.modules["_frozen_importlib"]  # importlib._bootstrap, loaded before site runs
    finder = next((f for f in sys.meta_path if getattr(f, "__name__", "") == "PathFinder"), None)
    if finder is None:
        return
    spec = finder.find_spec("sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE])
    if spec is None or spec.loader is None:
        return
    module = bootstrap.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def install() -> None:
    """Patch wandb when it is imported (now, if it already is)."""
    if "wandb" in sys.modules:
        from sweepq import wandb_bridge

        wandb_bridge.patch(sys.modules["wandb"])
    elif not any(isinstance(f, _WandbFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _WandbFinder())


if __name__ == "sitecustomize":  # run by site at start-up (not when sweepq loads it in-process)
    if os.environ.get("SWEEPQ_SWEEP_ID"):
        install()
    try:
        _chain_own_sitecustomize()
    except Exception as _err:  # noqa: BLE001 - as Python's site does: report and go on
        print(f"sweepq: error in sitecustomize: {_err}", file=sys.stderr)
