"""Settings of the whole test run."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _index_cache_dir(tmp_path_factory):
    """Dataset index caches go to a temporary folder, never the user's ``~/.cache``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLUGDET_CACHE_DIR", str(tmp_path_factory.mktemp("index_cache")))
        yield
