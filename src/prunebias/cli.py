"""Command line the Snakemake rules call: ``prunebias <stage> ...``.

Settings arrive as JSON strings (the rules' ``params``), so a stage's command line carries
exactly the settings that change its result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def _pairs(items: list[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` arguments as (name, path)."""
    return [tuple(item.split("=", 1)) for item in items]


def _model_predictions(p: argparse.ArgumentParser) -> None:
    """The predictions of several models, of one or more data sets, and those data sets' indexes."""
    p.add_argument("--index", nargs="+", required=True, metavar="DATASET=PATH", help="index.parquet of each data set")
    p.add_argument("--valid", nargs="+", required=True, help="validation predictions of every model")
    p.add_argument("--test", nargs="+", required=True, help="test predictions of the same models, same order")


def _data_files(p: argparse.ArgumentParser, images: bool = True, triggered: bool = True) -> None:
    """The prepared data set's files a stage reads, each its own argument."""
    p.add_argument("--index", required=True, help="index.parquet of the data set")
    if images:
        p.add_argument("--images", required=True, help="images.npy of the data set")
    if triggered:
        p.add_argument("--triggered", default=None, help="triggered ids of a backdoor task (its tasks/<task>.parquet)")


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default=os.environ.get("PRUNEBIAS_DEVICE", "auto"),
        help="auto (a leased GPU if any, else CPU), cpu, cuda:N; default $PRUNEBIAS_DEVICE or auto",
    )


def _threads(n: int) -> None:
    import torch  # here, not at the top: analysis stages never pay the torch import

    torch.set_num_threads(max(1, n))


def cmd_prepare(a):
    from prunebias import jobs

    jobs.prepare(a.config, a.index, a.images, workers=a.threads)


def cmd_prepare_labels(a):
    from prunebias import jobs

    jobs.prepare_labels(a.config, a.index)


def cmd_import_predictions(a):
    from prunebias import jobs

    jobs.import_predictions(a.index, dict(_pairs(a.files)), a.run, a.scores, dict(_pairs(a.out)))


def cmd_predictions_from_torch(a):
    from prunebias.data.user_predictions import from_arrays
    from prunebias.io import load_torch, write_parquet

    saved = load_torch(a.input, "cpu")
    missing = [k for k in ("ids", "scores", "attributes") if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise ValueError(
            f"{a.input}: expected a dict with keys ids, scores, attributes (torch.save); missing {missing}"
        )
    write_parquet(from_arrays(saved["ids"], saved["scores"], saved["attributes"]), a.out)
    print(f"wrote {a.out}", file=sys.stderr)


def cmd_train(a):
    from prunebias import jobs
    from prunebias.settings import TrainSpec

    _threads(a.threads)
    jobs.train(
        a.index,
        a.images,
        a.model,
        a.log,
        TrainSpec.from_json(a.spec),
        a.run,
        parent=a.parent,
        device=a.device,
        compile_step=bool(a.compile),
        triggered=a.triggered,
    )


def cmd_quantize(a):
    from prunebias import jobs

    _threads(a.threads)
    jobs.quantize(a.index, a.images, a.parent, a.model, a.run, a.settings, triggered=a.triggered)


def cmd_import_dense(a):
    from prunebias import jobs

    jobs.import_dense(a.index, a.file, a.model, a.run, a.outputs, a.image_size)


def cmd_predict(a):
    from prunebias import jobs

    _threads(a.threads)
    outputs = dict(_pairs(a.out))
    jobs.predict(
        a.index, a.images, a.model, outputs, a.cost, batch_size=a.batch_size, device=a.device, triggered=a.triggered
    )


def cmd_metrics(a):
    from prunebias import jobs
    from prunebias.settings import AnalysisSettings

    settings = AnalysisSettings.from_json(a.settings)
    jobs.model_metrics(a.index, a.valid, a.test, a.out, settings, triggered=a.triggered, cost=a.cost)


def cmd_aggregate(a):
    from prunebias import jobs

    jobs.aggregate(a.inputs, a.out_metrics, a.out_summary, a.out_groups)


def cmd_triggered_ids(a):
    from prunebias import jobs

    jobs.triggered_ids(a.index, a.task, a.out)


def cmd_experiment(a):
    from prunebias import jobs
    from prunebias.settings import AnalysisSettings

    index = dict(_pairs(a.index))
    settings = AnalysisSettings.from_json(a.settings)
    jobs.experiment_outputs(a.kind, a.metrics, index, a.valid, a.test, a.triggered, settings, a.out_table, a.out_figure)


def cmd_figures(a):
    from prunebias import jobs

    jobs.figures(a.summary, a.metrics, a.out_dir)


def cmd_criteria(a):
    from prunebias import jobs
    from prunebias.settings import AnalysisSettings

    outputs = dict(_pairs(a.out))
    jobs.criteria(a.index, a.tests, a.metrics, outputs, AnalysisSettings.from_json(a.settings))


def cmd_effects(a):
    from prunebias import jobs
    from prunebias.settings import AnalysisSettings

    index = dict(_pairs(a.index))
    settings = AnalysisSettings.from_json(a.settings)
    jobs.effects(index, a.valid, a.test, a.logs, settings, a.out_effects, a.out_convergence, a.out_figure)


def cmd_shortcut_control(a):
    from prunebias import jobs
    from prunebias.settings import AnalysisSettings

    settings = AnalysisSettings.from_json(a.settings)
    jobs.shortcut_control(
        dict(_pairs(a.index)), a.valid, a.test, a.effects, a.convergence, settings, a.out, a.out_figure
    )


def cmd_design(a):
    from prunebias import jobs

    jobs.design(a.index, a.images, a.config, a.out)


def cmd_criteria_figures(a):
    from prunebias import jobs

    jobs.criteria_figures(a.tables, a.out_dir)


def cmd_concat(a):
    from prunebias import jobs

    jobs.concat_tables(a.inputs, a.out)


def cmd_report(a):
    from prunebias.report import render

    images = dict(_pairs(a.images))
    size = render.build_report(
        a.out,
        metrics=a.metrics,
        groups=a.groups,
        criteria=a.criteria,
        figures=a.figures,
        benchmarks=a.benchmarks,
        data={name: (index, images.get(name)) for name, index in _pairs(a.index)},
        predictions=a.predictions,
        captions=a.captions,
        template=a.template,
        settings=a.settings,
        design=a.design,
    )
    print(f"wrote {a.out} ({size / 2**20:.1f} MB)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunebias", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="generate or read a data set into index.parquet + images.npy")
    p.add_argument("--config", type=_json, required=True, help="the datasets.<name> config block (JSON)")
    p.add_argument("--index", required=True, help="index.parquet to write")
    p.add_argument("--images", required=True, help="images.npy to write")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("prepare-labels", help="the index of an audit-only data set from its labels table")
    p.add_argument("--config", type=_json, required=True, help="the datasets.<name> config block (JSON)")
    p.add_argument("--index", required=True, help="index.parquet to write")
    p.set_defaults(func=cmd_prepare_labels)

    p = sub.add_parser("import-predictions", help="check a user's prediction files and write them in the contract")
    p.add_argument("--index", required=True, help="index.parquet of the data set")
    p.add_argument("--files", nargs="+", required=True, metavar="SPLIT=PATH", help="the user's prediction files")
    p.add_argument("--run", type=_json, required=True, help="run identity (JSON)")
    p.add_argument("--scores", choices=["logits", "probabilities"], default="logits")
    p.add_argument("--out", nargs="+", required=True, metavar="SPLIT=PATH")
    p.set_defaults(func=cmd_import_predictions)

    p = sub.add_parser(
        "predictions-from-torch",
        help="a prediction file from torch.save({'ids': [...], 'scores': (N, A) tensor, 'attributes': [...]})",
    )
    p.add_argument("--input", required=True, help="the .pt file your evaluation loop saved")
    p.add_argument("--out", required=True, help="the prediction file to write (.parquet)")
    p.set_defaults(func=cmd_predictions_from_torch)

    p = sub.add_parser("train", help="train a dense model or prune/fine-tune one")
    _data_files(p)
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--log", required=True, help="per-epoch log (Parquet) to write")
    p.add_argument("--spec", type=_json, required=True, help="training settings (JSON)")
    p.add_argument("--run", type=_json, required=True, help="run identity (JSON)")
    p.add_argument("--parent", default=None, help="dense checkpoint to start from (post-training methods)")
    _device(p)
    p.add_argument(
        "--compile",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: run the training step through torch.compile (config runtime.compile)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("quantize", help="int8 static post-training quantization of a dense model")
    _data_files(p)
    p.add_argument("--parent", required=True, help="the dense checkpoint to quantize")
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--run", type=_json, required=True, help="run identity (JSON)")
    p.add_argument("--settings", type=_json, required=True, help="calibration_samples and crop_size (JSON)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("import-dense", help="a user's trained model (state dict) as a dense checkpoint")
    p.add_argument("--index", required=True, help="index.parquet of the data set")
    p.add_argument("--file", required=True, help="the user's state dict (.pt, .pth or .safetensors)")
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--run", type=_json, required=True, help="run identity (JSON)")
    p.add_argument("--outputs", type=_json, required=True, help="the model's output names, in its order (JSON list)")
    p.add_argument("--image-size", type=int, required=True, help="the model input's side in pixels")
    p.set_defaults(func=cmd_import_dense)

    p = sub.add_parser("predict", help="dump logits of a model to Parquet")
    _data_files(p)
    p.add_argument("--model", required=True)
    p.add_argument("--out", nargs="+", required=True, metavar="SPLIT=PATH")
    p.add_argument("--cost", required=True, help="the model's measured cost (JSON) to write")
    p.add_argument("--batch-size", type=int, default=1024)
    _device(p)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("metrics", help="per-model metrics (tidy Parquet)")
    _data_files(p, images=False)
    p.add_argument("--valid", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cost", default=None, help="the model's cost.json (predict); none for imported predictions")
    p.add_argument("--settings", type=_json, required=True, help="analysis settings (JSON)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("aggregate", help="combine per-model metrics and summarise over seeds")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--out-metrics", required=True)
    p.add_argument("--out-summary", required=True)
    p.add_argument("--out-groups", required=True)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("triggered-ids", help="choose and save the triggered samples of a backdoor task")
    p.add_argument("--index", required=True, help="index.parquet of the data set")
    p.add_argument("--task", type=_json, required=True, help="the backdoor task spec (JSON)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_triggered_ids)

    p = sub.add_parser("experiment", help="table and figure of a controlled experiment")
    p.add_argument("--kind", required=True, choices=["single_vs_joint", "backdoor"])
    p.add_argument("--metrics", required=True, help="results/tables/metrics.parquet (for the figure)")
    _model_predictions(p)
    p.add_argument(
        "--triggered",
        nargs="*",
        default=[],
        help="triggered ids of each backdoor task: <results>/data/<dataset>/tasks/<task>.parquet",
    )
    p.add_argument("--settings", type=_json, required=True, help="analysis settings (JSON)")
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-figure", required=True, help="figure path without extension (.png and .svg are written)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("figures", help="figures of the metrics (PNG + SVG)")
    p.add_argument("--summary", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("criteria", help="dense-model criteria, CIEs and countermeasures of one (dataset, task, arch)")
    _data_files(p, images=False, triggered=False)
    p.add_argument("--tests", nargs="+", required=True, help="test predictions of every dense and sparse model")
    p.add_argument("--metrics", nargs="+", required=True, help="per-model metrics of the same models")
    p.add_argument("--out", nargs="+", required=True, metavar="TABLE=PATH")
    p.add_argument("--settings", type=_json, required=True, help="analysis settings (JSON)")
    p.set_defaults(func=cmd_criteria)

    p = sub.add_parser("effects", help="support-stable changes vs dense with paired bootstrap CIs, and convergence")
    _model_predictions(p)
    p.add_argument(
        "--logs",
        nargs="*",
        default=[],
        help="train_log.parquet of the models prunebias trained (audit-only ones have none)",
    )
    p.add_argument("--settings", type=_json, required=True, help="analysis settings (JSON)")
    p.add_argument("--out-effects", required=True)
    p.add_argument("--out-convergence", required=True)
    p.add_argument("--out-figure", required=True, help="figure path without extension (.png and .svg are written)")
    p.set_defaults(func=cmd_effects)

    p = sub.add_parser(
        "shortcut-control",
        help="dense models mixed with an identity-only predictor and with the prior, as a known positive and null",
    )
    _model_predictions(p)
    p.add_argument("--effects", required=True, help="effects.parquet (the sparse models shown beside the mixtures)")
    p.add_argument("--convergence", required=True, help="convergence.parquet (their information kept)")
    p.add_argument("--settings", type=_json, required=True, help="analysis settings (JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--out-figure", required=True, help="figure path without extension (.png and .svg are written)")
    p.set_defaults(func=cmd_shortcut_control)

    p = sub.add_parser("design", help="the synthetic benchmark's design table (prevalence per group, cue strength)")
    _data_files(p, triggered=False)
    p.add_argument("--config", type=_json, required=True, help="the datasets.<name> config block (JSON)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_design)

    p = sub.add_parser("criteria-figures", help="figures of the dense-model criteria and countermeasures (PNG + SVG)")
    p.add_argument("--tables", nargs="+", required=True, help="criteria tables results/tables/criteria/<table>.parquet")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_criteria_figures)

    p = sub.add_parser("concat", help="concatenate Parquet tables of one kind")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_concat)

    p = sub.add_parser("report", help="write the self-contained HTML audit report")
    p.add_argument("--out", required=True, help="the HTML file to write (results/report.html)")
    p.add_argument("--metrics", required=True, help="results/tables/metrics.parquet")
    p.add_argument("--groups", default=None, help="results/tables/group_gaps.tsv")
    p.add_argument("--criteria", nargs="*", default=[], help="criteria tables (<name>.parquet)")
    p.add_argument("--figures", nargs="*", default=[], help="figures (<name>.svg or .png), in report order")
    p.add_argument("--benchmarks", nargs="*", default=[], help="Snakemake benchmark TSVs (absent ones are skipped)")
    p.add_argument("--index", nargs="*", default=[], metavar="DATASET=PATH", help="index.parquet of each data set")
    p.add_argument("--images", nargs="*", default=[], metavar="DATASET=PATH", help="images.npy of each data set")
    p.add_argument("--predictions", nargs="*", default=[], help="test predictions of every model (measured sparsity)")
    p.add_argument("--captions", default=None, help="caption directory (reports/captions)")
    p.add_argument(
        "--template", default=None, help="Jinja2 template (default: the package's templates/audit_report.html.j2)"
    )
    p.add_argument("--settings", type=_json, default={}, help="the config's report block (JSON)")
    p.add_argument("--design", nargs="*", default=[], help="design tables of the synthetic data sets")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from prunebias.errors import NonFiniteLossError

    args = build_parser().parse_args(argv)
    from prunebias.io import DiskFullError  # after parsing: --help needs no pandas import

    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError, DiskFullError) as exc:
        # A user-facing error: one clear message, no traceback.
        print(f"prunebias {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
