import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from engine_toy import install_toy_plugin


@pytest.fixture(autouse=True)
def toy_plugin(monkeypatch):
    """Every engine test sees the toy components in the registries."""
    import core.plugins

    monkeypatch.setattr(core.plugins, "get_plugin_manager", core.plugins.get_plugin_manager)
    install_toy_plugin()
