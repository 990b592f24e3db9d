"""Plain ``--help`` pages: every value shown by its metavar (``PATH...``, ``FILE``, ``N``).

Typer's own help shows Python types (``<list[Path]>``, ``<bool>``); users expect the metavars
of classic Unix help. The commands use :class:`PlainHelpCommand` with Typer's rich help turned
off (``rich_markup_mode=None``), and give every option a metavar.

Typer may bring its own copy of click, so the click objects here (context, formatter,
parameters) are used through the methods they all have, and typed as ``Any``.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand


class PlainHelpCommand(TyperCommand):
    """A Typer command whose usage line and help list arguments by their metavar alone."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] PATH...``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_argument_name(p) for p in self.get_params(ctx) if _is_argument(p)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The arguments (metavar and help), then the options (Typer's records)."""
        args: list[tuple[str, str]] = []
        opts: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            if _is_argument(param):
                required = "  [required]" if param.required else ""
                args.append((_argument_name(param), (_help(param) + required).strip()))
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                opts.append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", None) == "argument"


def _argument_name(param: Any) -> str:
    name: str = param.metavar or (param.name or "ARG").upper()
    return name


def _help(param: Any) -> str:
    text = getattr(param, "help", None)
    return text if isinstance(text, str) else ""
