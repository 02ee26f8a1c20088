"""Build of the one compiled module: the kernels of the exact engines.

Everything else is in pyproject.toml. The extension is optional: without a C
compiler the package installs and the exact engines run their NumPy loops
alone (slower on the CPU, the same dendrogram).
"""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so the kernel rounds as NumPy does
FLAGS = [] if sys.platform.startswith("win") else ["-O3", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "sklearn_ecluster.cluster._exact_kernels",
            ["sklearn_ecluster/cluster/_exact_kernels.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ]
)
