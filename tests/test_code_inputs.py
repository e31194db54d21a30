"""prunebias.code_inputs: the files a stage runs, from the static import graph."""

import textwrap

import pytest

from prunebias.code_inputs import package_root, stage_files


def write_package(root, modules):
    for name, text in modules.items():
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        if name.endswith("__init__"):
            path = root.joinpath(*name.split(".")[:-1], "__init__.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def package(tmp_path):
    return write_package(
        tmp_path,
        {
            "prunebias.__init__": "",
            "prunebias.cli": """
            import argparse

            def cmd_a(args):
                from prunebias import jobs
                jobs.run_a(args)

            def cmd_whole(args):
                from prunebias import jobs
                handler = jobs
                handler.run_a(args)
            """,
            "prunebias.jobs": """
            from prunebias.io import write

            def run_a(args):
                from prunebias import alpha
                helper()

            def run_b(args):
                from prunebias import beta

            def helper():
                from prunebias.sub import gamma
            """,
            "prunebias.io": "def write(): pass\n",
            "prunebias.alpha": """
            from prunebias import delta

            def later():
                import prunebias.epsilon
            """,
            "prunebias.beta": "import torch\n",
            "prunebias.delta": "from prunebias import alpha  # a cycle\n",
            "prunebias.epsilon": "",
            "prunebias.sub.__init__": "",
            "prunebias.sub.gamma": "",
        },
    )


def names(files, root):
    return sorted(str(f.relative_to(root / "prunebias")) for f in files)


def test_a_called_function_brings_its_imports_not_its_neighbours(package):
    files = stage_files("prunebias.cli:cmd_a", root=package)
    assert names(files, package) == [
        "__init__.py",
        "alpha.py",
        "cli.py",
        "delta.py",
        "epsilon.py",
        "io.py",
        "jobs.py",
        "sub/__init__.py",
        "sub/gamma.py",
    ]


def test_a_module_used_other_than_by_calls_brings_all_it_imports(package):
    files = names(stage_files("prunebias.cli:cmd_whole", root=package), package)
    assert "beta.py" in files and "alpha.py" in files


def test_a_whole_module_entry_and_several_entries(package):
    whole = names(stage_files("prunebias.jobs", root=package), package)
    assert "beta.py" in whole and "cli.py" not in whole
    both = names(stage_files("prunebias.cli:cmd_a", "prunebias.jobs:run_b", root=package), package)
    assert "beta.py" in both and "alpha.py" in both


def test_an_unknown_function_is_named(package):
    with pytest.raises(LookupError, match="prunebias.jobs defines no function nope"):
        stage_files("prunebias.cli:cmd_a", "prunebias.jobs:nope", root=package)


def test_the_real_stages():
    def stage(command):
        files = stage_files("prunebias.cli:main", f"prunebias.cli:cmd_{command}")
        return {str(f.relative_to(package_root() / "prunebias")) for f in files}

    metrics = stage("metrics")
    assert {"cli.py", "jobs.py", "analysis/metrics.py", "io.py"} <= metrics
    # The torch side of jobs.py (train, predict) is no code of an analysis stage (the pure
    # schedules are: tasks checks experiment configs with them).
    torch_side = {f"training/{m}.py" for m in ("train", "models", "augment", "devices", "pruning")}
    assert not torch_side & metrics
    # The single-vs-joint and backdoor figures draw with figures.py (imported by figures_experiments).
    assert {"analysis/experiments.py", "plots/figures_experiments.py", "plots/figures.py"} <= stage("experiment")
    assert "training/train.py" in stage("train")
    assert {"data/synthetic_design.py", "data/synthetic.py"} <= stage("design")
