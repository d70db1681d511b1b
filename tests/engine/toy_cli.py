"""Runs ``core.run.main`` with the toy plugin installed (a child process of engine tests).

``TOY_SLOW_SAVE_FROM=N``: from the N-th checkpoint write on, write half of the file, create
``$TOY_SLOW_SAVE_MARKER`` and hang (so the test can kill the process mid-write).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
from engine_toy import install_toy_plugin


def _install_slow_save(first_slow: int, marker: str) -> None:
    import io

    real_save = torch.save
    calls = {"n": 0}

    def slow_save(obj, fileobj, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < first_slow:
            return real_save(obj, fileobj, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        fileobj.write(data[: len(data) // 2])
        fileobj.flush()
        Path(marker).write_text(str(calls["n"]))
        time.sleep(600)

    torch.save = slow_save


if __name__ == "__main__":
    if os.environ.get("TOY_SLOW_SAVE_FROM"):
        _install_slow_save(int(os.environ["TOY_SLOW_SAVE_FROM"]),
                           os.environ["TOY_SLOW_SAVE_MARKER"])
    install_toy_plugin()
    from core.run import main

    sys.exit(main(sys.argv[1:]))
