"""The command line: ``python -m core.run CONFIG [options]``.

Exit codes: 0 success, 1 training failure (non-finite loss, a file of the run that cannot be
written: full disk, read-only folder), 2 usage, config or checkpoint errors, or a run directory
in use by another training process (one line, no traceback unless ``--debug``).

    python -m core.run CONFIG [--work-dir ROOT] [--resume [CKPT]]   # train
    python -m core.run CONFIG --test CKPT [--out results.json] [--tta]   # evaluate
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core.config import dump_config
from core.engine.full_config import load_full_config
from core.errors import ConfigError, PlugdetError
from core.tools.cli import add_override_arguments

if TYPE_CHECKING:
    from core.engine.resume_config import ResumePlan

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


TRAIN_EXAMPLES = """examples:
  plugdet train plugins/retinanet/configs/retinanet_tinynet_fpn_demo_shapes.toml
  plugdet train CONFIG --set train.max_epochs=30 --set default_hooks.curves=false
  plugdet train CONFIG --set data.root=data/my_voc --set 'data.classes=["cat", "dog"]'
  plugdet train CONFIG --resume             # continue the latest run of CONFIG
  plugdet train CONFIG --print-config       # the merged config, references resolved
"""
TEST_EXAMPLES = """examples:
  plugdet test CONFIG work_dirs/demo/RUN/best_coco_bbox_mAP_epoch_20.pth
  plugdet test CONFIG CKPT --out results.json --tta
"""


def build_parser(prog: str = "python -m core.run", command: str | None = None,
                 ) -> argparse.ArgumentParser:
    """The CLI's argument parser: train or test (``command`` ``None``), or one of them."""
    description = {None: "Train or evaluate a detector from a TOML config.",
                   "train": "Train a detector from a TOML config.",
                   "test": "Evaluate a checkpoint on the config's test set."}[command]
    examples = {None: None, "train": TRAIN_EXAMPLES, "test": TEST_EXAMPLES}[command]
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="path of the TOML config")
    if command == "test":
        parser.add_argument("test", metavar="CKPT", help="the checkpoint to evaluate")
    add_override_arguments(parser)
    parser.add_argument(
        "--work-dir",
        help="root of the run directories (default work_dirs/<config stem>); each run writes "
        "to <root>/<timestamp>/",
    )
    if command != "test":
        parser.add_argument(
            "--resume",
            nargs="?",
            const="latest",
            metavar="CKPT",
            help="continue training: the latest checkpoint of this config's runs, or CKPT",
        )
    if command is None:
        parser.add_argument("--test", metavar="CKPT", help="evaluate CKPT instead of training")
    if command != "train":
        parser.add_argument("--out", metavar="JSON", help="write metrics and predictions"
                            + (" (with --test)" if command is None else ""))
        parser.add_argument("--tta", action="store_true", help="test-time augmentation"
                            + (" (with --test)" if command is None else ""))
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the merged config, every component default filled in, as TOML and exit; "
        "what the run builds without its data is built first, so a value it refuses is an error",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.set_defaults(test=None, resume=None, out=None, tta=False)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m core.run",
         command: str | None = None) -> int:
    """Run the CLI; returns the process exit code.

    :param command: ``"train"`` or ``"test"`` for the ``plugdet`` subcommands' options.
    """
    args = build_parser(prog, command).parse_args(argv)
    try:
        plan = _plan_resume(args)
        config = plan.config if plan is not None else load_full_config(
            args.config, args.overrides, allow_new=args.set_new, counts_from_data=True)
        if args.print_config:
            from core.engine.builders import check_run_config

            check_run_config(config, mode="test" if args.test else "train",
                             config_path=args.config)
            sys.stdout.write(dump_config(config))
            return EXIT_OK
        return _run(args, config, plan)
    except PlugdetError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file that cannot be read or written (full disk, permissions)
        if args.debug:
            raise
        from core.errors import describe_os_error

        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def _plan_resume(args: argparse.Namespace) -> ResumePlan | None:
    """With ``--resume`` (training): the checkpoint and the config to continue it with (the
    run's saved config and the ``--set`` changes)."""
    if not args.resume or args.test:
        return None
    from core.engine.resume_config import plan_resume, resume_checkpoint

    checkpoint = resume_checkpoint(args.resume, args.config, args.work_dir)
    return plan_resume(checkpoint, args.config, args.overrides, allow_new=args.set_new)


def _run(args: argparse.Namespace, config: dict, plan: ResumePlan | None = None) -> int:
    from core.engine.launch import run_testing, run_training
    from core.engine.losses import NonFiniteLossError
    from core.errors import RunFileError

    if (args.out or args.tta) and not args.test:
        raise ConfigError("--out and --tta need --test CKPT")
    if args.test and args.resume:
        raise ConfigError("--test and --resume exclude each other")
    if plan is not None:
        from core.engine.resume_config import refuse_finished

        refuse_finished(plan.checkpoint, config)
        if plan.warning:
            print(f"warning: {plan.warning}", file=sys.stderr)
    try:
        if args.test:
            run_testing(config, config_path=args.config, checkpoint=args.test,
                        work_dir=args.work_dir, out=args.out, tta=args.tta)
        else:
            run_training(config, config_path=args.config, work_dir=args.work_dir,
                         resume=args.resume)
    except (NonFiniteLossError, RunFileError) as exc:  # training started, then failed
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
