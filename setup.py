"""Build of memmodel's compiled engine core (everything else is in pyproject.toml)."""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "memmodel.engine._core",
            sources=["memmodel/engine/_core.c"],
            # the model by concern, one header each (included by _core.c); a change rebuilds the core
            depends=sorted(glob("memmodel/engine/core/*.h")),
            # -O2 and no -ffast-math: the core is integer code; exactness never depends on flags
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
        ),
        # the one-pass stack-distance pass of the miss-ratio curves (memmodel.analysis.mrc)
        Extension(
            "memmodel.analysis._stack",
            sources=["memmodel/analysis/_stack.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        ),
        # the lackey reader's byte scanner (memmodel.trace.lackey)
        Extension(
            "memmodel.trace._lackey",
            sources=["memmodel/trace/_lackey.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        ),
    ]
)
