"""A request's model resolved once: which credentials can serve it, and under which upstream name.

Each kind names models its own way (ChatGPT: the catalog's table with `MODEL_MAP`; Codex: `CODEX_MODELS` and
their aliases; an `openai` key: its own list). A `Route` works a kind's name out on the first credential of that
kind it meets, so the pick, the attempt and the health bookkeeping of one request ask it in O(1) per credential.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from openai_compat import catalog
from openai_compat.registry import UPSTREAMS
from tokens.models import Kind
from tokens.pool import PooledCredential

SLUGS: dict[str, Callable[[str], str | None]] = {Kind.CHATGPT: catalog.chatgpt_slug, Kind.CODEX: catalog.codex_slug}


@dataclass(slots=True)
class Route:
    model: str
    tools: bool = False  # the request may call tools: only a kind whose upstream can call them may take it
    _slugs: dict[str, str | None] = field(default_factory=dict, repr=False)  # per kind, as met
    _seen: Sequence[PooledCredential] | None = field(default=None, repr=False)
    _able: list[PooledCredential] = field(default_factory=list, repr=False)

    def slug(self, cred: PooledCredential) -> str | None:
        """The upstream model name `cred` would use, or None when it cannot serve the model."""
        if cred.kind in SLUGS:
            return self._of(cred.kind)
        return self.model if cred.serves(self.model) else None

    def able(self, cred: PooledCredential) -> bool:
        """`cred` serves the model and, when the request has tools, can call them."""
        return self.slug(cred) is not None and (not self.tools or UPSTREAMS[cred.kind].calls_tools)

    def candidates(self, creds: Sequence[PooledCredential]) -> list[PooledCredential]:
        """Those of `creds` (the pool's snapshot) that can take the request; worked out again only when the
        snapshot changed (a reload, or a credential the last attempt disabled), not on every attempt."""
        if creds is not self._seen:
            self._seen, self._able = creds, [c for c in creds if self.able(c)]
        return self._able

    def served(self, creds: Sequence[PooledCredential]) -> bool:
        """Some credential of `creds` serves the model, tools or not."""
        return any(self.slug(c) is not None for c in creds)

    def peers(self, creds: Sequence[PooledCredential], cred: PooledCredential) -> list[int]:
        """The ids of the others of `creds` that serve the model: who `cred`'s failures are compared with."""
        return [c.row_id for c in creds if c.id != cred.id and self.slug(c) is not None]

    @property
    def known(self) -> bool:
        """A ChatGPT or Codex account would serve the model, were one in the pool."""
        return any(self._of(kind) is not None for kind in SLUGS)

    def _of(self, kind: str) -> str | None:
        if kind not in self._slugs:
            self._slugs[kind] = SLUGS[kind](self.model)
        return self._slugs[kind]
