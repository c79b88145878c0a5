"""Product model names to what an upstream calls them.

Users pick a model by product name (``gpt-4``, ``gpt-3.5``); Azure needs a
deployment name and OpenAI-compatible servers a model id. A name that is not
configured (a setting saved before the deployments changed, say) is answered
by the default model, with a warning in the log, rather than failing every
message of that user.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["ModelMap"]

logger = logging.getLogger(__name__)


class ModelMap:
    """A non-empty mapping with a default; the default is the first entry unless named."""

    __slots__ = ("_default", "_mapping")

    def __init__(self, mapping: Mapping[str, str], default: str | None = None) -> None:
        if not mapping:
            raise ValueError("at least one model must be configured")
        for name, target in mapping.items():
            if not name or not target:
                raise ValueError(f"empty model name or target in {dict(mapping)!r}")
        self._mapping = dict(mapping)
        self._default = next(iter(self._mapping)) if default is None else default
        if self._default not in self._mapping:
            raise ValueError(f"default model {self._default!r} is not one of {list(mapping)}")

    @property
    def default(self) -> str:
        return self._default

    @property
    def names(self) -> list[str]:
        return list(self._mapping)

    def resolve(self, model: str) -> str:
        """The upstream name for ``model``, or the default's."""
        target = self._mapping.get(model)
        if target is None:
            logger.warning("unknown model %r; answering with %r", model, self._default)
            target = self._mapping[self._default]
        return target
