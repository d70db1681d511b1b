import sys
from pathlib import Path

# Lets the tests import their sibling helper modules under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))
