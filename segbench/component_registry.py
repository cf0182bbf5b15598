"""One registration rule for every component registry that plugins extend.

RoI layers (``segbench.ops.ROI_LAYERS``), mask heads (``MASK_HEADS``), mask losses (``MASK_LOSSES``),
U-Net losses (``UNET_LOSSES``) and whole models (``MODEL_PLUGINS``) are each a :class:`Registry`: a
read-only mapping from a name (the run's model key value) to the component, extended only through
:meth:`Registry.register`. The rule, as detectron2's ``Registry``:

- a new name is added;
- a name already registered to *another* object is an :class:`~segbench.errors.InputError`, unless the
  caller passes ``override=True`` explicitly (then the new object replaces the old one);
- registering the *same* object again under the same name is a no-op, so loading one plugin twice (two
  method runs in one process, ``segbench compare`` after ``segbench train --method``) is harmless;
- reserved names (``mask_head: default``) can never be registered.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from segbench.errors import InputError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> component, extended by :meth:`register`; ``what`` names the component in messages."""

    def __init__(
        self, what: str, initial: Mapping[str, T] | None = None, reserved: tuple[str, ...] = ()
    ) -> None:
        self.what = what
        self.reserved = frozenset(reserved)
        self._items: dict[str, T] = {}
        for name, obj in (initial or {}).items():
            self.register(name, obj)

    def register(self, name: str, obj: T, *, override: bool = False) -> T:
        """Add ``obj`` under ``name`` (see the module docstring for the rule); returns ``obj``."""
        if not isinstance(name, str) or not name:
            raise InputError(f"a {self.what} name must be a non-empty string, got {name!r}")
        if name in self.reserved:
            raise InputError(f"{self.what} {name!r} is a reserved name; choose another name")
        current = self._items.get(name)
        if current is not None and current is not obj and not override:
            raise InputError(
                f"{self.what} {name!r} is already registered (to {_describe(current)}); choose "
                "another name, or pass override=True to replace it"
            )
        self._items[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its component (tests that register temporary components)."""
        if name not in self._items:
            raise InputError(f"{self.what} {name!r} is not registered; registered: {', '.join(self._items)}")
        return self._items.pop(name)

    pop = unregister

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def lookup(self, name: object, register_with: str | None = None) -> T:
        """The object named ``name``; an unknown name is one line naming the known ones (and the function
        that registers another, ``register_with``)."""
        if not isinstance(name, str) or name not in self._items:
            how = f" (register one with {register_with})" if register_with else ""
            raise InputError(f"unknown {self.what} {name!r}; known: {', '.join(self._items)}{how}")
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._items)})"


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}" if module else name
