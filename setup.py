"""Package mapping for the one `edgecraft` distribution.

The design card fixes the source folders (`sdk/`, `plugins/`, `backends/`) while the import
namespace must be `edgecraft`, `edgecraft.plugins` and `edgecraft.backends`. pyproject.toml cannot
express "find sub-packages under a remapped folder", so this file computes the package list;
everything else (metadata, dependencies, entry points) lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {"edgecraft": "sdk", "edgecraft.plugins": "plugins", "edgecraft.backends": "backends"}

packages: list[str] = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages.extend(f"{package}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=ROOTS, package_data={"": ["*.json", "*.yaml", "*.cpp"]})
