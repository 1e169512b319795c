"""A backend's part of an algorithm: implementations registered per (capability, backend).

A strategy decides *what* to do (a recipe, an accuracy budget, what falls back) and asks the target's
backend *how* on its runtime, through an implementation it looks up by interface: NNCF's ``min_max``
algorithm with one backend class per framework is the model. The SDK defines the interfaces (e.g.
:class:`edgecraft.quantize.Int8Implementation`, capability ``"quantization.int8"``); a backend package
subclasses one, sets ``backend`` to its :attr:`edgecraft.Backend.name`, and registers the class from
``edgecraft_register_implementations``. A strategy then calls ``ctx.implementation(Int8Implementation)``
and never names a runtime; a new runtime is one backend package that brings its own implementations.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar


class Implementation(ABC):
    """Base of every interface a strategy drives on a backend (instantiated without arguments, per lookup)."""

    #: What it implements, e.g. ``"quantization.int8"`` (set by the SDK interface class).
    capability: ClassVar[str]
    #: The :attr:`edgecraft.Backend.name` whose targets this implementation serves.
    backend: ClassVar[str]
    #: One line for listings.
    summary: ClassVar[str] = ""


ImplementationT = TypeVar("ImplementationT", bound=Implementation)


def implementation_key(capability: str, backend: str) -> str:
    """The registry's name for one implementation: one per (capability, backend); a second is a conflict."""
    return f"{capability}@{backend}"


@dataclass(frozen=True)
class Providers:
    """What the registry knows about one capability for one backend (see :meth:`Registry.implementations_for`)."""

    #: The implementation class the backend has, or None.
    found: type[Implementation] | None
    #: Why the backend does not provide it, when it says so (:attr:`edgecraft.Backend.refusals`).
    refusal: str | None = None
    #: Backends that do provide it -> their target names, for the error message.
    elsewhere: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def check_implementation(obj: Any, who: str) -> str:
    """The registry key of a class registered through ``edgecraft_register_implementations``; a
    :class:`~edgecraft.errors.PluginError` naming ``who`` (the registering plugin) when it is not one."""
    from edgecraft.errors import PluginError

    if not (isinstance(obj, type) and issubclass(obj, Implementation)):
        raise PluginError(f"{who} registered {obj!r}, which is not a subclass of an edgecraft implementation "
                          "interface (edgecraft.implementations.Implementation)")
    for attr in ("capability", "backend"):
        if not isinstance(getattr(obj, attr, None), str):
            raise PluginError(f"implementation {obj.__name__} from {who} does not set the class attribute {attr!r} "
                              "(a string)")
    return implementation_key(obj.capability, obj.backend)


def find_providers(implementations: Mapping[str, type[Implementation]], capability: str, backend: str,
                   target_backends: Mapping[str, str], refusals: Mapping[str, str]) -> Providers:
    """``backend``'s implementation of ``capability``, or the backend's refusal and who else provides it.

    ``target_backends`` maps every installed target to its backend; ``refusals`` is ``backend``'s
    :attr:`edgecraft.Backend.refusals`.
    """
    found = implementations.get(implementation_key(capability, backend))
    if found is not None:
        return Providers(found)
    elsewhere = {impl.backend: tuple(sorted(t for t, b in target_backends.items() if b == impl.backend))
                 for impl in implementations.values() if impl.capability == capability}
    return Providers(None, refusals.get(capability), elsewhere)


def select_implementation(providers: Providers, interface: type[ImplementationT], *, target: str, backend: str,
                          error: Callable[[str, str | None], Exception]) -> ImplementationT:
    """An instance of ``backend``'s implementation of ``interface``, or ``error(message, hint)`` saying why not.

    The message names the target, its backend, the reason the backend gives (if it declares one) and
    the backends (with their targets) that do provide the capability.
    """
    capability = interface.capability
    found = providers.found
    if found is not None:
        if not issubclass(found, interface):
            from edgecraft.errors import PluginError

            raise PluginError(f"the {capability!r} implementation registered for backend {backend!r} "
                              f"({found.__module__}.{found.__qualname__}) is not a subclass of "
                              f"{interface.__module__}.{interface.__qualname__}")
        return found()
    others = ", ".join(f"{name} ({', '.join(targets) or 'no targets'})"
                       for name, targets in sorted(providers.elsewhere.items())) or "none installed"
    if providers.refusal:
        message = f"{capability} cannot run on target {target!r} (backend {backend!r}): {providers.refusal}"
    else:
        message = (f"{capability} is not available on target {target!r}: its backend {backend!r} provides no "
                   f"implementation of it")
    hint = (f"backends that provide {capability}: {others}; use one of their targets, or keep this target "
                   "in a plan without this step")
    raise error(message, hint)
