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
            # -O2 and no -ffast-math: the core is integer code; exactness never depends on flags.
            # -falign-loops=32: the record loops' speed swung by ~10 % with where an unrelated edit
            # moved them (a 16-byte shift: qsort TLB-only 0.92x -> 0.82x of an older build's speed);
            # with aligned loop heads that build ran stream at 1.02x instead of 0.86x, lifecycle at
            # 1.00x instead of 0.93x (benchmarks/ab_core.py, pairs of runs). -falign-functions=64: a
            # function moved by 32 bytes still swung them (feed chunking, 0xa0 more code before the loops:
            # qsort and stream TLB-only 0.91x, qsort baseline-4k 1.075x, the loops' own code unchanged); with
            # whole lines per function the same change ran 0.99-1.02x of HEAD built the same way
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-falign-loops=32",
                                "-falign-functions=64"],
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
