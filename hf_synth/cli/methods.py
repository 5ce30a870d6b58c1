"""A command per declared method (`hf_synth.method`): its flags are the method's options and follow-up
steps, then the run's, the LLM's and publishing's; running it maps the method (and the steps asked for)."""
from __future__ import annotations

import argparse
import functools

from ..errors import HFSynthError
from ..method import Option, resolve, transforms
from .flags import (agent_llms_of, cache_of, caps_of, count, llm_arguments, llm_of, publish_arguments,
                    run_arguments)
from .run import estimate_only, run


def add_method_commands(commands) -> None:
    for transform in transforms().values():
        method = transform.method
        if method.command is None:  # (a judge: a step of other commands)
            continue
        parser = commands.add_parser(method.command, help=method.summary)
        run_arguments(parser)
        group = parser.add_argument_group(method.name)
        for option in method.options:
            group.add_argument(option.cli_flag, dest=option.name, help=option.help, **option_reading(option))
        for step in method.steps:
            if step.metavar:
                group.add_argument(step.flag, metavar=step.metavar, help=step.help)
            else:
                group.add_argument(step.flag, action="store_true", help=step.help)
        llm_arguments(parser, method.sampling)
        publish_arguments(parser)
        parser.set_defaults(run=functools.partial(run_method, transform))


def option_reading(option: Option) -> dict:
    """How argparse reads `option`."""
    if isinstance(option.default, bool):
        return {"action": "store_false" if option.default else "store_true", "default": option.default}
    kind = count if option.zero_means_none else option.type or type(option.default)
    metavar = option.cli_flag.lstrip("-").replace("-", "_").upper()
    reading = {"type": kind, "default": option.default, "metavar": None if option.choices else metavar}
    if option.choices:
        reading["choices"] = option.choices
    if option.many:
        reading["action"] = "append"
    return reading


def _check_agents(args, steps) -> None:
    """An agent named by `--agent-model` must be one of the run's (a misspelt one would go unused)."""
    known = {agent for step in steps for agent in step.method.agents}
    for agent, _, _ in getattr(args, "agent_model", None) or []:
        if agent not in known and not (agent.startswith("reviewer_") and "reviewer" in known):
            raise HFSynthError(f"--agent-model {agent}=…: this run has no agent {agent!r}; its agents are "
                               f"{', '.join(sorted(known))}")


def run_method(transform: type, args: argparse.Namespace) -> None:
    method = transform.method
    options = {}
    for option in method.options:
        value = getattr(args, option.name)
        options[option.name] = None if option.zero_means_none and value == 0 else value
    main = transform(llm_of(args), llms=agent_llms_of(args), cache=cache_of(args), **caps_of(args), **options)
    if args.estimate:
        return estimate_only(args, main)
    asked = [(step, getattr(args, step.flag.lstrip("-").replace("-", "_"))) for step in method.steps]
    steps = [main] + [resolve(step.transform)(llm_of(args), llms=agent_llms_of(args), cache=cache_of(args), **caps_of(args),
                                              **{name: getattr(main, name) for name in step.options})
                      for step, value in asked if value and step.transform]
    for step in steps[1:]:
        step.share_caps(main)
    _check_agents(args, steps)
    dataset = run(args, steps, method.title(main) if method.title else method.name)
    for step, value in asked:
        if value and step.after:
            resolve(step.after)(dataset, value, main)
