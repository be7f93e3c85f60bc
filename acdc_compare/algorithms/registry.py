"""The one table of discovery methods. Adding a method: one module with an options dataclass and a
`run(problem, options)` function, plus its `AlgorithmSpec` in `ALGORITHMS` below."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from acdc_compare.algorithms import acdc, eap, hybrid
from acdc_compare.algorithms.base import AlgorithmSpec
from acdc_compare.circuit import Circuit

ALGORITHMS: Mapping[str, AlgorithmSpec] = MappingProxyType(
    {spec.name: spec for spec in (acdc.SPEC, eap.EAP_SPEC, eap.EAP_IG_SPEC, hybrid.SPEC)})


def algorithm(name: str) -> AlgorithmSpec:
    """The registered method `name`, or a ValueError listing the choices."""
    spec = ALGORITHMS.get(str(name))
    if spec is None:
        raise ValueError(f"unknown method {name!r}; choose one of {list(ALGORITHMS)}")
    return spec


def spec_of(options: Any) -> AlgorithmSpec:
    """The method whose options class `options` is an instance of (exact class)."""
    for spec in ALGORITHMS.values():
        if type(options) is spec.options:
            return spec
    raise TypeError(f"{type(options).__name__} is not the options class of a registered method "
                    f"({', '.join(s.options.__name__ for s in ALGORITHMS.values())})")


def make_options(method: str, threshold: float | None = None, **options: Any) -> Any:
    """The method's options from keyword values (validated now); unknown names are refused by name."""
    spec = algorithm(method)
    fields = {f.name for f in spec.option_fields()}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"method {spec.name!r} takes no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(sorted(fields))}")
    if threshold is not None:
        options["threshold"] = threshold
    return spec.options(**options)


def run(problem: Any, options: Any) -> Circuit:
    """Run the method that `options` belongs to on a prepared problem."""
    return spec_of(options).run(problem, options)
