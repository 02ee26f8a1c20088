"""The one import of the compiled kernels of the exact engines (``_exact_kernels.c``).

``kernels`` is the extension module, or None when the package was built
without a C compiler (the extension is optional): every user reads
``_compiled.kernels`` at call time and falls back to its NumPy version.
"""

try:
    from . import _exact_kernels as kernels
except ImportError:  # built without a C compiler
    kernels = None
