"""``ssl-bench list``: every extension point's entries, and the timm backbones.

Methods (aliases, contract, options), data sets, augmentations, selection rules,
trackers, weight sources and executors come from their cards
(:mod:`ssl_bench.plugins.index`), so the listing needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ssl_bench.cli.flags import Parser
from ssl_bench.plugins.registry import (
    EXTENSION_POINTS,
    dataset_registry,
    load_plugin,
    method_registry,
)

#: The extension points listed as a plain table of names and summaries (methods and data
#: sets have tables of their own).
PLAIN = tuple(p for p in EXTENSION_POINTS if p.registry not in (method_registry, dataset_registry))


def command_list(argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    parser = Parser(prog="ssl-bench list", description="List methods, data sets, the other "
                    "plug-ins and backbones.")
    parser.add_argument("--methods", action="store_true", help="list methods and their options")
    parser.add_argument("--datasets", nargs="?", const=True, default=False, metavar="NAME",
                        help="list data sets; with NAME, that data set's card (source, "
                             "licence, citation, task, classes, splits) and options")
    for point in PLAIN:
        parser.add_argument(point.list_flag, action="store_true",
                            help=f"list {point.registry.kind}s")
    parser.add_argument("--backbones", nargs="?", const="*", metavar="PATTERN",
                        help="list timm backbones matching PATTERN (e.g. 'resnet*')")
    parser.add_argument("--pretrained-only", action="store_true",
                        help="only backbones with pretrained weights")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    args = parser.parse_args(argv)
    for plugin in args.plugin:
        load_plugin(plugin)
    chosen = {p.list_flag for p in EXTENSION_POINTS if getattr(args, _dest(p.list_flag))}
    show_all = not (chosen or args.backbones)
    console = Console()
    if "--methods" in chosen or show_all:
        cards = method_registry.cards()
        table = Table(title="methods")
        for column in ("name", "aliases", "teacher", "unlabeled", "summary"):
            table.add_column(column)
        for name, card in cards.items():
            table.add_row(name, ", ".join(card.aliases), card.facts["teacher"],
                          card.facts["unlabeled"], card.summary)
        console.print(table)
        for name, card in cards.items():
            console.print(f"  {name} {_method_contract(card)}", highlight=False, markup=False,
                          soft_wrap=True)
        _print_options(console, cards, "option")
    if isinstance(args.datasets, str):
        _print_dataset_card(console, args.datasets)
    elif "--datasets" in chosen or show_all:
        cards = dataset_registry.cards()
        table = Table(title="data sets")
        for column in ("name", "aliases", "description"):
            table.add_column(column)
        for name, card in cards.items():
            table.add_row(name, ", ".join(card.aliases), card.summary)
        console.print(table)
        _print_options(console, cards, "option")
    for point in PLAIN:
        if point.list_flag in chosen or show_all:
            cards = point.registry.cards()
            table = Table(title=f"{point.registry.kind}s (entry points: "
                          f"{point.registry.entry_point_group})")
            for column in ("name", "summary"):
                table.add_column(column, overflow="fold")
            for name, card in cards.items():
                table.add_row(name, Text(card.summary))  # (Text: "[weights]" is no markup)
            console.print(table)
            _print_options(console, cards, "option")
    if args.backbones or show_all:
        from ssl_bench.models.backbones import list_backbones

        pattern = args.backbones or "*"
        names = list_backbones(pattern, pretrained_only=args.pretrained_only)
        if show_all:
            console.print(f"backbones: {len(names)} timm architectures "
                          "(ssl-bench list --backbones 'PATTERN' to list them)", soft_wrap=True)
        else:
            for name in names:
                console.print(_backbone_line(name), highlight=False, markup=False,
                              soft_wrap=True)
            console.print(f"{len(names)} backbones match {pattern!r}", highlight=False)
    return 0


def _print_dataset_card(console: Any, name: str) -> None:
    """One data set's card, a line per field, then its options (a misspelt name: the
    registry's one-line error with a hint)."""
    from ssl_bench.data.card_details import CARD_DETAILS
    from ssl_bench.plugins.index import CARD_FIELDS

    canonical = dataset_registry.resolve(name)
    card = dataset_registry.cards()[canonical]
    console.print(f"{canonical}: {card.summary}", highlight=False, markup=False,
                  soft_wrap=True)
    for field in CARD_FIELDS:
        console.print(f"  {field}: {card.facts.get(field, 'not declared')}", highlight=False,
                      markup=False, soft_wrap=True)
    details = CARD_DETAILS.get(canonical)
    choices = {option.name: option.choices or () for option in card.options}
    for line in details(choices) if details is not None else []:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    _print_options(console, {canonical: card}, "option")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _method_contract(card: Any) -> str:
    """What a method asks of the engine: its views, state and own defaults, one line."""
    defaults = ", ".join(f"{k}={v}" for k, v in card.defaults.items()) or "none"
    return (f"tasks: {card.facts['tasks']}; views: {card.facts['views']}; "
            f"state: {card.facts['state']}; own defaults: {defaults}")


def _print_options(console: Any, cards: dict[str, Any], word: str) -> None:
    """Each entry's declared options, one line each: flag, type, default, help."""
    for name, card in cards.items():
        for o in card.options:
            choices = f", one of {', '.join(map(str, o.choices))}" if o.choices else ""
            console.print(f"  {name} {word} {o.flag} {o.type.__name__.upper()} "
                          f"(default {o.default}{choices}): {o.help}", highlight=False,
                          markup=False, soft_wrap=True)


def _backbone_line(name: str) -> str:
    """A backbone or pretrained tag, and whether its weights are available offline."""
    from ssl_bench.models.weights import availability, pretrained_tag

    tag = pretrained_tag(name)
    if tag is None:  # an architecture without published weights
        return name
    found = availability(tag)
    where = f"{found.source}: {found.detail}" if found.offline else found.detail
    label = f"{name:<40}" if tag == name else f"{name:<32} {tag:<40}"
    return f"{label} available offline: {'yes' if found.offline else 'no'}" + (
        f" ({where})" if where else "")
