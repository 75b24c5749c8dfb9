"""Every name kappa_orch exports, and the public methods of its classes, say what they do."""

from __future__ import annotations

import inspect

import kappa_orch


def test_the_public_api_has_docstrings() -> None:
    undocumented = []
    for name in sorted(n for n in dir(kappa_orch) if not n.startswith("_")):
        obj = getattr(kappa_orch, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = (obj.__doc__ or "").strip()
        # a dataclass without a docstring gets its signature as one
        if not doc or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
            undocumented.append(name)
        if inspect.isclass(obj) and obj.__module__.startswith("kappa_orch"):
            for member, value in vars(obj).items():
                function = value.fget if isinstance(value, property) else value
                if not member.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                    undocumented.append(f"{name}.{member}")
    assert undocumented == []
