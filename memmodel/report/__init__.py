"""The report layer: plotly figures (:mod:`memmodel.report.figures`) and the self-contained HTML
report (:mod:`memmodel.report.html`).

The package is also the top-level function :func:`memmodel.report`: importing a subpackage binds
its name on the parent package, so once ``memmodel.report.figures`` is imported the name
``memmodel.report`` is this package. Calling the package therefore calls the function (same
signature and docstring), and ``memmodel.report(trace, "out.html")`` works whatever was imported.
"""

import inspect as _inspect
import sys as _sys
import types as _types

from memmodel import _report_function


class _CallablePackage(_types.ModuleType):
    """This package, callable as :func:`memmodel.report`."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        return _report_function(*args, **kwargs)  # type: ignore[arg-type]


_self = _sys.modules[__name__]
_self.__class__ = _CallablePackage
_self.__signature__ = _inspect.signature(_report_function)  # type: ignore[attr-defined]
del _self
