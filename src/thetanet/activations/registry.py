"""Activations by name: :func:`register` (a class decorator), :func:`get`, :func:`names`."""

from __future__ import annotations

from typing import Any

from thetanet.activations.base import ActivationFunction

# Filled once, at import, by the @register decorators of the row modules.
_REGISTRY: dict[str, type[ActivationFunction]] = {}

#: The lecture table's twelve rows, in its order.
LECTURE_TABLE: tuple[str, ...] = (
    "identity", "binary_step", "logistic", "tanh", "arctan", "relu", "softplus",
    "bent_identity", "soft_exponential", "sinusoid", "sinc", "gaussian",
)


def register(cls: type[ActivationFunction]) -> type[ActivationFunction]:
    """Class decorator: make ``cls`` available by its ``name`` and ``aliases``."""
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"activation name {key!r} is already registered")
        _REGISTRY[key] = cls
    return cls


def names() -> list[str]:
    """The canonical names of all registered activations (aliases excluded): the lecture
    table's rows in its order, then the other fixed ones, then the learnable ones (each group
    in the order of registration)."""
    canonical = [n for n in LECTURE_TABLE if n in _REGISTRY]
    for learnable in (False, True):
        for cls in _REGISTRY.values():
            if cls.name not in canonical and bool(cls.learnable) is learnable:
                canonical.append(cls.name)
    return canonical


def get(identifier: str | dict[str, Any] | ActivationFunction | None, **params: Any
        ) -> ActivationFunction:
    """Return a fresh activation object from a name, a config dict or an instance.

    ``None`` means the identity. Unknown names raise ``ValueError`` listing the known ones.
    ``params`` are the class's constructor arguments, e.g. ``get("soft_exponential", alpha=0.5)``.
    """
    if identifier is None:
        identifier = "identity"
    if isinstance(identifier, ActivationFunction):
        if params:
            raise TypeError("params cannot be combined with an activation instance")
        return identifier
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        name = cfg.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"activation config needs a 'name': {identifier!r}")
        return get(name, **{**cfg, **params})
    if not isinstance(identifier, str):
        raise TypeError(f"activation must be a name, config dict or instance, got {identifier!r}")
    key = identifier.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown activation {identifier!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[key](**params)
