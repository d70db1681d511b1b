"""``plugdet``: one command with subcommands.

    plugdet train CONFIG [options]          # = python -m core.run CONFIG
    plugdet test CONFIG CKPT [--out F]      # = python -m core.run CONFIG --test CKPT
    plugdet predict CONFIG CKPT SOURCE... --out DIR
    plugdet export CONFIG CKPT --format onnx [--dynamic]
    plugdet plugins [--json]
    plugdet browse CONFIG --out DIR
    plugdet weights list | inspect FILE | convert FILE --config CFG --out OUT
    plugdet analyze RUN_DIR [--checkpoint best|last|PATH] [--split test|val]
    plugdet compare RUN_A RUN_B [...] [--out DIR]

``plugdet COMMAND --help`` lists the options of a command with examples.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

PROG = "plugdet"
PLUGIN_EXAMPLES = """examples:
  plugdet plugins                  # plugins, their components and load errors
  plugdet plugins --json --verbose
"""


def _train(argv: list[str]) -> int:
    from core.run import main

    return main(argv, prog=f"{PROG} train", command="train")


def _test(argv: list[str]) -> int:
    from core.run import main

    return main(argv, prog=f"{PROG} test", command="test")


def _predict(argv: list[str]) -> int:
    from core.tools.predict import main

    return main(argv, prog=f"{PROG} predict")


def _export(argv: list[str]) -> int:
    from core.tools.export import main

    return main(argv, prog=f"{PROG} export")


def _plugins(argv: list[str]) -> int:
    from core.plugins import main

    parser = argparse.ArgumentParser(
        prog=f"{PROG} plugins", description="List plugdet plugins and their components.",
        epilog=PLUGIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument("--verbose", action="store_true", help="show load-error tracebacks")
    args = parser.parse_args(argv)
    return main([*(["--json"] if args.json else []), *(["--verbose"] if args.verbose else [])])


def _browse(argv: list[str]) -> int:
    from core.tools.browse_dataset import main

    return main(argv, prog=f"{PROG} browse")


def _weights(argv: list[str]) -> int:
    from core.tools.weights import main

    return main(argv, prog=f"{PROG} weights")


def _analyze(argv: list[str]) -> int:
    from core.tools.analyze import main

    return main(argv, prog=f"{PROG} analyze")


def _compare(argv: list[str]) -> int:
    from core.tools.compare import main

    return main(argv, prog=f"{PROG} compare")


#: name -> (one-line help, runner of the command's arguments)
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train": ("train a detector from a TOML config", _train),
    "test": ("evaluate a checkpoint on the config's test set", _test),
    "predict": ("detect objects in image files, folders or glob patterns", _predict),
    "export": ("export a checkpoint to ONNX, checked against PyTorch", _export),
    "plugins": ("list the installed plugins and their components", _plugins),
    "browse": ("save training samples after the pipeline, boxes drawn", _browse),
    "weights": ("list weight converters; inspect or convert other frameworks' checkpoints",
                _weights),
    "analyze": ("error analysis of a run's checkpoint as a web page (TIDE, per class)",
                _analyze),
    "compare": ("compare runs as a web page (config, metrics, curves)", _compare),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (the command; its options are parsed by the command)."""
    listing = "\n".join(f"  {name:<9} {text}" for name, (text, _) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train, test, run and export object detectors.",
        epilog=f"commands:\n{listing}\n\n'{PROG} COMMAND --help' shows a command's options "
               "and examples.", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                        help="one of: " + ", ".join(COMMANDS))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``plugdet``; returns the exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command = parser.parse_args(argv[:1]).command
    return COMMANDS[command][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
