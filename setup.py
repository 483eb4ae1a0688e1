"""Build of memmodel's compiled engine core (everything else is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "memmodel.engine._core",
            sources=["memmodel/engine/_core.c"],
            # -O2 and no -ffast-math: the core is integer code; exactness never depends on flags
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"],
        )
    ]
)
