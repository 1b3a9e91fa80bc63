"""Packaging glue that pyproject.toml cannot express: the wheel carries the lediflow shared
library (a platform file, not a pure-Python wheel), so it is tagged for this platform and any
Python 3 (the binding is ctypes; it links against no Python ABI).

Build it with scripts/python-wheel.sh, which puts the library into lediflow/ first."""

from setuptools import setup

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # newer setuptools ship it themselves
    from setuptools.command.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"bdist_wheel": PlatformWheel})
