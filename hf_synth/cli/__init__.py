"""hf-synth: better instruction-tuning data with multi-agent LLM methods."""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import signal
import sys

import datasets

from .. import __version__
from ..errors import HFSynthError, as_what_happened
from . import commands as commands_
from .flags import key_and_cache_arguments, llm_arguments, publish_arguments
from .methods import add_method_commands, option_reading


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless there is none to show."""

    def _get_help_string(self, action):
        # a switch that turns something off (store_false) defaults to "not given", not to True
        off_switch = isinstance(action, argparse._StoreFalseAction)
        return action.help if action.default in (None, False) or off_switch else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-synth", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hf_synth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser = functools.partial(commands.add_parser, formatter_class=HelpFormatter)
    add_method_commands(commands)

    publish = commands.add_parser("publish", help="publish a finished run to the Hub with a generated dataset card")
    publish.add_argument("dir", help="the --output folder of an hf-synth run (it holds the data and the recipe)")
    publish.add_argument("repo_id", help="the Hub dataset repository, e.g. me/alpaca-coevol (created if needed)")
    publish.add_argument("--folder", help="write the repository folder here too, to inspect or upload later")
    publish.add_argument("--local-only", action="store_true", help="only write --folder; upload nothing")
    publish.add_argument("--overwrite", action="store_true",
                         help="replace --folder even if hf_synth did not write it (never the run's folder)")
    publish_arguments(publish)
    publish.set_defaults(run=commands_.publish)

    reproduce = commands.add_parser("reproduce", help="run a recipe again (hf_synth_recipe.json of a run or a published dataset)")
    reproduce.add_argument("recipe", help="a recipe file, or a folder that holds one")
    reproduce.add_argument("--output", required=True, help="folder to save the result to: a new path, or the folder "
                           "of an earlier hf-synth run")
    reproduce.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    reproduce.add_argument("--input", help="the input to use instead of the recipe's")
    reproduce.add_argument("--split", help="default: the recipe's")
    reproduce.add_argument("--limit", type=int, help="default: the recipe's")
    reproduce.add_argument("--batch-size", type=int, help="default: the recipe's")
    reproduce.add_argument("--num-proc", type=int, help="worker processes for Dataset.map")
    reproduce.add_argument("--model", help="run every step on this model instead of the recipe's")
    reproduce.add_argument("--base-url", action="append",
                           help="send every step to this endpoint instead of the recipe's; repeat it for replicas")
    reproduce.add_argument("--push-to-hub", metavar="REPO_ID", help="also publish the result")
    key_and_cache_arguments(reproduce)
    publish_arguments(reproduce)
    reproduce.set_defaults(run=commands_.reproduce)

    analyze = commands.add_parser("analyze", help="tables and figures of a finished run (rounds, lengths, directions, …)")
    analyze.add_argument("input", help="a dataset written by hf-synth (a save_to_disk folder) or a data file")
    analyze.add_argument("--output", required=True, help="folder for the CSV tables, PNG/HTML figures and summary.md "
                         "(a new path, or one hf-synth wrote)")
    analyze.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    analyze.add_argument("--split", default="train", help="split of a saved DatasetDict or Hub dataset")
    analyze.set_defaults(run=commands_.analyze)

    filter_ = commands.add_parser("filter", help="keep the rows worth training on (plain and LLM-judged filters)")
    filter_.add_argument("input", help="a dataset written by hf-synth (a save_to_disk folder), a data file, or a Hub id")
    filter_.add_argument("--output", required=True, help="folder to save the kept rows to (a new path, or one hf-synth wrote)")
    filter_.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    filter_.add_argument("--split", default="train", help="split of a saved DatasetDict or Hub dataset")
    filter_.add_argument("--batch-size", type=int, default=64, help="rows judged concurrently per batch")
    filter_.add_argument("--num-proc", type=int, help="worker processes for Dataset.filter")
    group = filter_.add_argument_group("filters, applied in this order")
    offered = commands_.offered_filters()
    group.add_argument("--keep", help=f"comma-separated: succeeded (rows that did not fail), "
                       f"{''.join(f'{f.name} ({f.help}), ' for f in offered)}wins (the evolved response beats the "
                       "original under the pairwise judge)")
    for offered_filter in offered:
        for option in offered_filter.options:
            group.add_argument(option.cli_flag, dest=option.name, help=option.help, **option_reading(option))
    group.add_argument("--min-turns", type=int, help="conversations with at least N user turns")
    group.add_argument("--max-turns", type=int, help="conversations with at most N user turns")
    group.add_argument("--max-tokens-per-conversation", type=int,
                       help="conversations of at most N tokens (the embedded model's tokenizer)")
    group.add_argument("--min-quality", type=float,
                       help="AlpaGasus-style LLM rating from 0 to 5; AlpaGasus kept rows rated 4.5 or more")
    group.add_argument("--response-column", help="the response the quality judge rates (default: output or response)")
    group.add_argument("--on-failure", choices=("keep", "drop"), default="keep",
                       help="rows the judge could not decide (kept with a warning, or dropped)")
    llm_arguments(filter_)
    filter_.set_defaults(run=commands_.filter_rows)
    return parser


def _interrupt_main_process_only(main_pid: int):
    """SIGINT and SIGTERM stop the run once, in the main process: forked `num_proc` workers (which
    inherit this handler) ignore Ctrl-C, which reaches the whole process group, and die quietly on
    SIGTERM, which the main process's pool sends them as it shuts down."""
    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    return handler


_VALUE = r"(\.\.\.|\[\.\.\.\]|'[^']*'|\"[^\"]*\")?"
_PYTHON_ADVICE = re.compile(rf"LLM\(([a-z_]+)={_VALUE}\)|\b([a-z_]+)={_VALUE}(?![\w\[]|\.\w)")


def in_cli_terms(message: str, parser: argparse.ArgumentParser) -> str:
    """An error written in Python's terms (`instruction_column=`, `LLM(api_key=...)`, `license='other'`)
    with the flags that say the same on the command line (`--instruction-column`, `--api-key-env NAME`,
    `--license other`)."""
    flags = {"api_key": "--api-key-env NAME", "perspectives": "--perspective"}
    for action in parser._actions:
        for command in (action.choices or {}) if isinstance(action, argparse._SubParsersAction) else ():
            for option in action.choices[command]._actions:
                if option.option_strings:
                    flags.setdefault(option.dest, option.option_strings[-1])

    def flag(match: re.Match) -> str:
        name, value = (match[1], match[2]) if match[1] else (match[3], match[4])
        if name not in flags:
            return match[0]
        value = value.strip("'\"") if value and value[0] in "'\"" else ""
        return f"{flags[name]} {value}".strip()

    return _PYTHON_ADVICE.sub(flag, message)


@contextlib.contextmanager
def _as_a_command():
    """What a command's run changes in the process, undone when it ends (so `main` can be called again,
    from a script or a test): status lines logged to the stderr of the moment (without a terminal the
    live status is a log line every 30 s and one at the end), no `datasets` progress bars beside the
    live status, and Ctrl-C and SIGTERM handled in the main process only."""
    log = logging.getLogger("hf_synth.status")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logged = (log.level, log.propagate)
    if not log.handlers:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    interrupt = _interrupt_main_process_only(os.getpid())
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
        if bars_were_on:
            datasets.enable_progress_bars()
        if handler in log.handlers:
            log.removeHandler(handler)
            log.setLevel(logged[0])
            log.propagate = logged[1]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _as_a_command():
        try:
            args.run(args)
        except BaseException as raised:
            exc = as_what_happened(raised)  # (Dataset.map's pool errors, as what happened)
            if isinstance(exc, HFSynthError):
                print(f"error: {in_cli_terms(str(exc), parser)}", file=sys.stderr)
                return 1
            if isinstance(exc, KeyboardInterrupt):
                print("interrupted: completed requests are cached; run the same command again to resume",
                      file=sys.stderr)
                return 130
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
