"""The strategy kinds as the command line names and describes them: in the parser's help
(``KINDS_HELP``, ``KINDS_DESCRIBED``, filled in by ``KindsHelpFormatter`` only when a help text is
printed) and in ``strategies describe``.

Listing the kinds imports every kind, and with them the engine (numba): the parser imports this
module, never the kinds, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from macro_pipeline.cli.tables import table

KINDS_HELP = "<the strategy kinds>"  # in a help line: the kinds' names
KINDS_DESCRIBED = "<every kind described>"  # in an epilog: ``describe_kinds()``


def kind_names() -> list[str]:
    # imports every kind, and with them the engine (numba): only when asked
    from macro_pipeline.strategies.registry import KINDS

    return list(KINDS)


class KindsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the kinds filled in when it is printed (``KINDS_HELP``, ``KINDS_DESCRIBED``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return text.replace(KINDS_HELP, ", ".join(kind_names())) if text else text

    def add_text(self, text: str | None) -> None:
        if text and KINDS_DESCRIBED in text:
            text = text.replace(KINDS_DESCRIBED, describe_kinds())
        super().add_text(text)


def describe_kinds(kinds: Sequence[str] | None = None) -> str:
    """Each strategy kind (all, or ``kinds``): its calendars and defaults, and every parameter
    with its type, allowed values (bounds), default and meaning."""
    # imports every kind, and with them the engine (numba): only when asked
    from macro_pipeline.strategies.registry import strategy_class

    blocks = []
    for kind in kinds or kind_names():
        cls = strategy_class(kind)
        head = (f"{kind}: universe {cls.default_universe}, rebalance {cls.default_rebalance}, calendar "
                f"{cls.default_calendar} (allowed: {', '.join(cls.calendars)})")
        rows = [[p["name"], p["type"], json.dumps(p["default"]), p["allowed"] or "", p["doc"]]
                for p in cls.Params.describe()]
        blocks.append(head + ("\n" + table(rows, ["param", "type", "default", "allowed", "meaning"]) if rows
                              else "\n(no parameters)"))
    return "\n\n".join(blocks)
