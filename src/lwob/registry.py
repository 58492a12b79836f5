"""A name -> class registry, shared by the method types and the task kinds.

Modules register their class with a decorator; lookups of unknown names raise ConfigError
listing what is known. Both registries are filled by importing every module of their package
(pkgutil), so adding a method or a task kind is adding one module; modules outside the
package register theirs as plugins (lwob.plugins), which a job imports on first need.
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
        from . import plugins

        plugins.load_from_env()  # a job's plugins count among the names it knows
        return sorted(self)

    def get(self, name: str) -> type:  # noqa: D102 - dict.get with an error for unknown names
        try:
            return self[name]
        except (KeyError, TypeError):
            pass
        # A job process imports the workflow's plugins (lwob.plugins) when it first meets a
        # name it does not know: they may register it.
        from . import plugins

        if isinstance(name, str) and plugins.load_from_env() and name in self:
            return self[name]
        raise ConfigError(f"unknown {self.what} '{name}' (known: {', '.join(self.known())})")
