"""plugdet kernel: hook specifications, plugin discovery, typed registries and TOML configs.

Plugins implement the hooks of :mod:`core.hookspecs` with the :data:`impl` marker::

    from core import impl

    @impl
    def register_backbones(register):
        register("MyNet", MyNet)
"""

from core.hookspecs import hookimpl as impl
from core.hookspecs import hookspec

__version__ = "0.2.0"
__all__ = ["__version__", "hookspec", "impl"]
