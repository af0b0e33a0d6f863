"""The one logging setup of every radstream process (CLI commands and stage workers).

A library's traceback never reaches a terminal or a stage log at INFO: radstream turns
library failures into one-line reasons (a rejection, a DLQ record, a CLI error), so a
record from outside radstream that carries a traceback is dropped unless DEBUG is on, when
it shows in full. radstream's own records pass unchanged.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class LibraryTracebacks(logging.Filter):
    """Drops records with a traceback from loggers outside `radstream`, below DEBUG level."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        if self.show or record.exc_info is None and not record.exc_text and not record.stack_info:
            return True
        return record.name == "radstream" or record.name.startswith("radstream.")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr)
    show = logging.getLogger().isEnabledFor(logging.DEBUG)
    for handler in logging.getLogger().handlers:
        handler.addFilter(LibraryTracebacks(show))
