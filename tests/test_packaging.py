"""Packaging: declared dependencies are exactly those imported, the conda environment lists
the same packages, and the installed environment is consistent (pip check)."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml", "torch_pruning": "torch-pruning"}
# PyPI distribution -> conda-forge package, where they differ.
CONDA_NAME = {
    "torch": "pytorch",
    "matplotlib": "matplotlib-base",
    "seaborn": "seaborn-base",
    "snakemake": "snakemake-minimal",
}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}


def python_imports(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported() -> set[str]:
    """Third-party distributions imported by the package and by the workflow's rule files."""
    names = set()
    for path in (ROOT / "src/prunebias").rglob("*.py"):
        names |= python_imports(path.read_text())
    for path in [ROOT / "Snakefile", *(ROOT / "workflow/rules").glob("*.smk")]:
        # Rule files are not Python; their top-level import statements name modules as Python's do.
        names |= set(re.findall(r"^(?:import|from) (\w+)", path.read_text(), re.M))
    third_party = {n for n in names if n not in sys.stdlib_module_names and n != "prunebias"}
    return {DISTRIBUTION.get(n, n).lower() for n in third_party}


def test_declared_dependencies_are_exactly_the_imported_ones():
    assert declared() == imported()


def test_conda_environment_lists_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "envs/prunebias.yaml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python"}
    assert conda == {CONDA_NAME.get(n, n) for n in declared()}


def test_every_rule_has_the_conda_environment():
    rules = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    assert rules.count("\nrule ") + rules.count("\n    rule:") == rules.count("conda:\n")
    assert 'CONDA_ENV = "../../envs/prunebias.yaml"' in (ROOT / "workflow/rules/common.smk").read_text()


def test_installed_environment_is_consistent():
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
