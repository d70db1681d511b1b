import sys
from pathlib import Path

HERE = Path(__file__).parent
for folder in (HERE, HERE.parent / "engine"):  # peer_files; engine_toy (the toy run)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
