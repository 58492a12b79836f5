"""A name -> class registry, shared by the method types and the task kinds.

Modules register their class with a decorator; lookups of unknown names raise ConfigError
listing what is known. Both registries are filled by importing every module of their package
(pkgutil), so adding a method or a task kind is adding one module.
"""

from __future__ import annotations

from typing import Callable

from .errors import ConfigError


class Registry(dict):
    def __init__(self, what: str, check: Callable[[type], None] | None = None):
        super().__init__()
        self.what = what  # "method type", "task kind": used in messages
        self.check = check

    def register(self, name: str):
        def deco(cls: type) -> type:
            if name in self and self[name] is not cls:
                raise RuntimeError(f"{self.what} '{name}' registered twice")
            if self.check is not None:
                self.check(cls)
            cls.name = name
            self[name] = cls
            return cls

        return deco

    def known(self) -> list[str]:
        return sorted(self)

    def get(self, name: str) -> type:  # noqa: D102 - dict.get with an error for unknown names
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} '{name}' (known: {', '.join(self.known())})") from None
