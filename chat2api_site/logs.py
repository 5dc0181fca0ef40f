"""Daphne's access log through `logging`, so its lines carry the request id and follow LOG_FORMAT.

Daphne writes one NCSA line per request straight to stdout, which would put plain lines without a request id
into a JSON log. It writes the line while the application sends the last of the reply, inside the request's
task, so a log record made there carries the request's id. Daphne builds its access logger from `daphne.cli`'s
name after importing the application: `install()`, run at import, swaps the class there. Under another server
`daphne.cli` is never imported (importing it would install Twisted's reactor), and nothing changes.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

from daphne.access import AccessLogGenerator

log = logging.getLogger("daphne.access")


class AccessLog(AccessLogGenerator):
    """A stdout access log becomes INFO lines of `daphne.access`; an `--access-log FILE` stays as daphne writes it."""

    def write_entry(
        self,
        host: str | None,
        date: datetime,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        if self.stream is not sys.stdout:
            super().write_entry(host, date, request, status, length, ident, user)
            return
        log.info('%s "%s" %s %s', host, request, status or "-", length or "-")


def install() -> None:
    cli = sys.modules.get("daphne.cli")
    if cli is not None:
        # A module looked up at run time is a bare ModuleType to mypy, without daphne.cli's names.
        cli.AccessLogGenerator = AccessLog  # type: ignore[attr-defined]
