"""The estimator contract without scikit-learn: what a profile needs to be scored.

Every detector and profile follows scikit-learn's estimator contract (docs/design.md
§5): `__init__` stores parameters only, `get_params`/`set_params` read and write them by
the `__init__` signature, `fit` returns self, learned state ends in `_`, and `clone`
gives a new unfitted twin. Subclassing `sklearn.base.BaseEstimator` for that costs a
watcher ~67 MiB of imports (issue #14) to score profiles it never fits, so the classes a
profile's pickle holds subclass `Estimator` instead. scikit-learn itself still accepts
them (`sklearn.base.clone`, its estimator checks): they have `get_params`.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, TypeVar

E = TypeVar("E", bound="Estimator")
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Estimator:
    """Base of the estimators sysgram persists: parameters by the `__init__` signature."""

    @classmethod
    def _param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values()
                      if p.name != "self" and p.kind not in _VARIADIC)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The `__init__` parameters; with `deep`, nested estimators' too, as `name__param`."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self: E, **params: Any) -> E:
        """Set parameters (`name__param` reaches a nested estimator's); returns self."""
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, nests, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; "
                                 f"it takes: {', '.join(valid)}.")
            if nests:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        # Only what differs from the defaults, as scikit-learn prints it.
        defaults = {p.name: p.default for p in inspect.signature(type(self)).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                 if not _same(v, defaults.get(k, inspect.Parameter.empty))]
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: object, b: object) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):  # arrays and the like: shown
        return False


def clone(estimator: Any) -> Any:
    """A new unfitted estimator with the same parameters (`sklearn.base.clone`'s contract):
    nested estimators cloned, other parameters deep-copied; containers element-wise."""
    if isinstance(estimator, list | tuple | set | frozenset):
        return type(estimator)(clone(e) for e in estimator)
    if isinstance(estimator, dict):
        return {k: clone(v) for k, v in estimator.items()}
    if not hasattr(estimator, "get_params") or isinstance(estimator, type):
        return copy.deepcopy(estimator)
    params = {k: clone(v) for k, v in estimator.get_params(deep=False).items()}
    return type(estimator)(**params)
