"""The I/O edge of the report: the file readers, the Jinja2 rendering of the template
(:data:`DEFAULT_TEMPLATE`, package data) and :func:`build_report`, which the command line calls
to read the workflow's outputs and write ``results/report.html`` atomically.

Everything the page needs is inside the file: figures as data URIs (SVG, else PNG),
thumbnails as PNG (small images) or JPEG (photographs) data URIs, CSS and a small table
sorter inline, and a Content-Security-Policy (``default-src 'none'``) so the browser makes
no request at all. The output holds no date or machine path: same inputs, same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.io import read_metadata, write_text
from prunebias.report.captions import TABLE_CAPTIONS, figure_entry, figure_files
from prunebias.report.context import report_context
from prunebias.report.format import number_text, sparsity_text
from prunebias.vocabulary import SETTING

# Package data: found in a source checkout and in an installed wheel alike.
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "audit_report.html.j2"
#: The default run must stay below this (checked by the tests).
MAX_REPORT_BYTES = 20 * 2**20


# ---------------------------------------------------------------- rendering
def _template(path: str | os.PathLike | None):
    import jinja2

    path = Path(path) if path else DEFAULT_TEMPLATE
    if not path.exists():
        raise FileNotFoundError(f"report template {path} not found (pass --template)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path.parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["sparsity"] = sparsity_text
    env.filters["prob"] = lambda p: number_text(p, ".2f")
    return env.get_template(path.name)


def render_report(context: Mapping, template: str | os.PathLike | None = None) -> str:
    """Render the report template with ``context`` (see :func:`prunebias.report.context.report_context`)."""
    return _template(template).render(**context)


# ---------------------------------------------------------------- readers
def read_benchmarks(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Rows of Snakemake benchmark TSVs with ``stage``: the directory after ``benchmarks/`` (the rule)."""
    frames = []
    for p in map(Path, paths):
        parts = p.parts
        stage = parts[parts.index("benchmarks") + 1] if "benchmarks" in parts[:-1] else p.parent.name
        frame = pd.read_csv(p, sep="\t")
        if "s" not in frame.columns:
            raise ValueError(f"benchmark file {p} has no 's' column (not a Snakemake benchmark?)")
        frames.append(frame.assign(stage=stage))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage", "s"])


def read_runs(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Identity and measured sparsity of each model, from its predictions' metadata."""
    keys = SETTING + ["method", "target_sparsity", "measured_sparsity", "seed"]
    rows = []
    for p in paths:
        meta = read_metadata(p)
        missing = [k for k in keys if k not in meta]
        if missing:
            raise ValueError(f"predictions {p} lack metadata keys {missing}")
        rows.append({k: meta[k] for k in keys})
    return pd.DataFrame(rows, columns=keys)


def read_criteria(paths: Sequence[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Criteria tables by name (file stem); files of the same name are concatenated."""
    by_name: dict[str, list[pd.DataFrame]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, []).append(pd.read_parquet(p))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in by_name.items()}


def read_dataset(
    index_path: str | os.PathLike, images_path: str | os.PathLike | None, identities: Sequence[str]
) -> tuple[dict, np.ndarray | None]:
    """(the data set's summary for :func:`prunebias.report.runs.data_table`, its memory-mapped image
    array, or None for an audit-only data set, which has no images)."""
    from prunebias.data import store

    index = store.load_index(index_path)
    images = store.load_images(images_path) if images_path is not None else None
    info = store.index_info(index_path)
    shape = images.shape if images is not None else None
    return {"index": index, "info": info, "shape": shape, "identities": list(identities)}, images


def read_figures(paths: Sequence[str | os.PathLike], captions: str | os.PathLike | None) -> list[dict]:
    """One entry per figure name, in the order of ``paths`` (:func:`prunebias.report.captions.figure_entry`).

    Its caption is ``<captions>/<name>.rst`` when that exists.
    """
    out = []
    for name, path in figure_files(paths):
        rst = Path(captions) / f"{name}.rst" if captions else None
        text = rst.read_text() if rst is not None and rst.exists() else None
        out.append(figure_entry(name, path, path.read_bytes(), text))
    return out


def read_table_captions(captions: str | os.PathLike | None) -> dict[str, str]:
    """Table name -> rst text of ``<captions>/tables/<name>.rst``, for those that exist."""
    if captions is None:
        return {}
    files = {name: Path(captions) / "tables" / f"{name}.rst" for name in TABLE_CAPTIONS}
    return {name: rst.read_text() for name, rst in files.items() if rst.exists()}


def build_report(
    out: str | os.PathLike,
    *,
    metrics: str | os.PathLike,
    groups: str | os.PathLike | None = None,
    criteria: Sequence[str | os.PathLike] = (),
    figures: Sequence[str | os.PathLike] = (),
    benchmarks: Sequence[str | os.PathLike] = (),
    data: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]] | None = None,
    predictions: Sequence[str | os.PathLike] = (),
    captions: str | os.PathLike | None = None,
    template: str | os.PathLike | None = None,
    settings: Mapping | None = None,
    design: Sequence[str | os.PathLike] = (),
) -> int:
    """Read the workflow's outputs, render the audit report and write it atomically to ``out``.

    Parameters
    ----------
    out : path
        The HTML file to write.
    metrics : path
        ``results/tables/metrics.parquet`` (per-model tidy metrics).
    groups : path, optional
        ``results/tables/group_gaps.tsv``.
    criteria : paths
        Criteria tables (``<name>.parquet``); absent ones are reported as absent.
    figures : paths
        Figure files (``<name>.svg`` / ``.png``), in the order the report shows them.
    benchmarks : paths
        Snakemake benchmark TSVs under ``.../benchmarks/<rule>/``; absent ones are counted
        and skipped (a job restored from elsewhere may have none).
    data : mapping, optional
        Data set name -> (index file, image array file or None) of each prepared data set.
    predictions : paths
        Test predictions of every model (their metadata holds the measured sparsity).
    captions : path, optional
        ``reports/captions`` (figure captions ``<name>.rst``, table captions ``tables/<name>.rst``).
    template : path, optional
        The Jinja2 template (default: :data:`DEFAULT_TEMPLATE`, shipped in the package).
    settings : mapping, optional
        The config's ``report`` block (``title``).
    design : paths
        Design tables of the synthetic data sets (``tables/design/<dataset>.parquet``).

    Returns
    -------
    int
        Size of the written file in bytes.
    """
    metrics_frame = pd.read_parquet(metrics)
    present = [p for p in benchmarks if Path(p).exists()]
    identities = sorted(set(metrics_frame["identity"]) - {"all"})
    datasets, images = {}, {}
    for name, (index_path, images_path) in (data or {}).items():
        datasets[name], array = read_dataset(index_path, images_path, identities)
        if array is not None:
            ids = datasets[name]["index"]["id"].astype(str)
            images[name] = (array, dict(zip(ids, range(len(ids)))))
    context = report_context(
        title=(settings or {}).get("title", "Pruning bias audit"),
        metrics=metrics_frame,
        criteria=read_criteria(criteria),
        groups=pd.read_csv(groups, sep="\t", dtype={"group_0": float, "group_1": float}) if groups else None,
        figures=read_figures(figures, captions),
        datasets=datasets or None,
        runs=read_runs(predictions) if predictions else None,
        benchmarks=read_benchmarks(present) if benchmarks else None,
        missing_benchmarks=len(benchmarks) - len(present),
        images=images,
        table_captions=read_table_captions(captions),
        design={Path(p).stem: pd.read_parquet(p) for p in design},
    )
    text = render_report(context, template)
    write_text(text, out)
    return len(text.encode("utf-8"))
