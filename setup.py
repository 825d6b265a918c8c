"""The one thing pyproject.toml cannot say: the language identifier's optional C accelerator.

`monitor/triage/_langid_walk.c` is built at install time when a C compiler and Python's headers
are there; `optional=True` lets the install go on without it (a warning), and the language
identifier then runs the same arithmetic in Python (monitor/triage/langid_model.py).
-ffp-contract=off keeps the compiler from fusing a multiply and an add, so the C path's floats
are the Python path's (a compiler that does not know the flag fails here, and the fallback is used).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "monitor.triage._langid_walk",
            sources=["monitor/triage/_langid_walk.c"],
            extra_compile_args=["-ffp-contract=off"],
            optional=True,
        )
    ]
)
