"""Fuzzed inputs (hypothesis; project issue 19, "Faults and hostile inputs").

Random and mutated files go into three readers: the CelebA attribute and partition
parsers, the config checks as the Snakefile runs them, and the predictions reader of the
metrics stage. Mutations: truncated lines, other encodings (latin-1, UTF-16, invalid
UTF-8), NUL bytes, CR/CRLF line endings, huge numbers, NaN/inf, duplicate ids, missing
columns, damaged bytes. Every case must end in a correct result or in one error of the
project's kinds (ValueError / FileNotFoundError and their subclasses) whose message names
the file, never in another exception, and never with a partially written output.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from prunebias import jobs
from prunebias.config import ConfigError, check_config, schema_errors, train_spec, unknown_keys
from prunebias.data import celeba, store
from prunebias.data.celeba import ATTR_FILE, PARTITION_FILE, CelebAError
from prunebias.data.celeba_format import write_mini_celeba
from prunebias.io import METADATA_KEY, read_predictions, write_parquet
from workflow_utils import ANALYSIS_SETTINGS as SETTINGS
from workflow_utils import prepared_files

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
# PRUNEBIAS_FUZZ_SCALE=10 runs ten times the examples (a deeper search than the default run's ~1000).
SCALE = float(os.environ.get("PRUNEBIAS_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    """Hypothesis settings of these tests: ``examples`` cases, no per-case deadline (the machine may be busy)."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Byte strings a hostile or damaged file may hold.
PAYLOADS = [
    b"\x00",
    b"\x00\x00\x00\x00",
    b"\xff",
    b"\xfe\xff",
    b"\xe9",
    b"\xc3",
    b"\xc3(",
    b"\xed\xa0\x80",
    b"\x85",
    "\u2028".encode(),
    "\u00a0".encode(),
    "é".encode("latin-1"),
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"-",
    b"1",
    b"0",
    b"2",
    b"3",
    b"-1",
    b"1" * 5000,
    b"9" * 400,
    b"1e400",
    b"-1e308",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"0x1",
    b"+1",
    b"1.0",
    b"../../etc/passwd",
    b"a/b.jpg",
    b"000001.jpg",
    b"000001.jpg 1",
    b"id",
    b"Male",
    b"\xef\xbb\xbf",
]
ENCODINGS = ["latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "cp1252", "utf-32"]


def byte_mutations(max_ops: int = 3):
    op = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(PAYLOADS) | st.binary(min_size=1, max_size=6)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
        st.tuples(st.just("replace"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("dup_line"), st.integers(0, 30)),
        st.tuples(st.just("drop_line"), st.integers(0, 30)),
        st.tuples(st.just("encode"), st.sampled_from(ENCODINGS)),
    )
    return st.lists(op, min_size=1, max_size=max_ops)


def mutate(data: bytes, ops) -> bytes:
    for op in ops:
        kind, args = op[0], op[1:]
        pos = int(args[0] * len(data)) if kind in ("truncate", "insert", "delete", "replace") else 0
        if kind == "truncate":
            data = data[:pos]
        elif kind == "insert":
            data = data[:pos] + args[1] + data[pos:]
        elif kind == "delete":
            data = data[:pos] + data[pos + args[1] :]
        elif kind == "replace" and data:
            pos = min(pos, len(data) - 1)
            data = data[:pos] + bytes([args[1]]) + data[pos + 1 :]
        elif kind in ("dup_line", "drop_line"):
            lines = data.split(b"\n")
            k = args[0] % len(lines)
            lines[k : k + 1] = [lines[k]] * 2 if kind == "dup_line" else []
            data = b"\n".join(lines)
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif kind == "encode":
            data = data.decode("utf-8", "replace").encode(args[0], "replace")
    return data


def _why(exc: BaseException, path) -> str:
    """The kind of refusal, for hypothesis' statistics: the message without the path and details."""
    text = str(exc).replace(str(path), "").lstrip(":, ")
    text = re.sub(r"'[^']*'", "'…'", re.sub(r"line \d+", "line N", text))
    return " ".join(text.split()[:4])


def names_the_file(exc: BaseException, *paths) -> bool:
    return any(str(p) in str(exc) for p in paths)


def assert_no_partial_output(directory: Path) -> None:
    left = sorted(p.name for p in directory.rglob("*")) if directory.exists() else []
    assert left == [], f"partial output left behind: {left}"


_counter = itertools.count()


def fresh_dir(base: Path) -> Path:
    """A new directory per hypothesis example (function-scoped fixtures do not reset between examples)."""
    return Path(tempfile.mkdtemp(dir=base, prefix=f"ex{next(_counter)}-"))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ================================================================= CelebA text files
NAME = st.from_regex(r"[A-Z][A-Za-z_]{0,8}", fullmatch=True).filter(lambda s: s not in ("Id",))


@st.composite
def attribute_tables(draw):
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    n = draw(st.integers(1, 8))
    values = draw(
        st.lists(st.lists(st.sampled_from([-1, 1]), min_size=len(names), max_size=len(names)), min_size=n, max_size=n)
    )
    return names, [f"{i + 1:06d}.jpg" for i in range(n)], np.array(values, dtype=np.int8)


@st.composite
def layouts(draw):
    """How a valid file may be laid out: separators, line endings, blank lines, a BOM."""
    return {
        "sep": draw(st.sampled_from([" ", "  ", "\t", " \t "])),
        "eol": draw(st.sampled_from(["\n", "\r\n", "\r"])),
        "trailing_space": draw(st.booleans()),
        "final_eol": draw(st.booleans()),
        "blank_after": draw(st.sets(st.integers(0, 10), max_size=3)),
        "bom": draw(st.booleans()),
    }


def render(lines: list[str], header: int, lay: dict) -> bytes:
    out = []
    for k, line in enumerate(lines):
        out.append(line.replace(" ", lay["sep"]) + (" " if lay["trailing_space"] else ""))
        if k >= header and (k - header) in lay["blank_after"]:
            out.append("")
    text = lay["eol"].join(out) + (lay["eol"] if lay["final_eol"] else "")
    return (b"\xef\xbb\xbf" if lay["bom"] else b"") + text.encode()


def attribute_lines(names, ids, values) -> list[str]:
    rows = [f"{i} " + " ".join(str(int(v)) for v in row) for i, row in zip(ids, values)]
    return [str(len(ids)), " ".join(names)] + rows


def expected_attributes(names, ids, values) -> pd.DataFrame:
    frame = pd.DataFrame(values == 1, columns=names)
    frame.insert(0, "id", np.array(ids, dtype=object).astype(str))
    return frame


def check_attribute_frame(frame: pd.DataFrame) -> None:
    """What any successful parse must give: the contract of the index's attribute part."""
    assert list(frame.columns[:1]) == ["id"] and frame.columns.is_unique and len(frame.columns) >= 2
    assert all(frame[c].dtype == bool for c in frame.columns[1:])
    assert frame["id"].is_unique and len(frame) >= 1
    assert not any(("/" in i) or ("\\" in i) or ("\x00" in i) for i in frame["id"])


@fuzz(60)
@given(table=attribute_tables(), lay=layouts())
def test_valid_attribute_files_parse_the_same_in_any_layout(work, table, lay):
    path = fresh_dir(work) / ATTR_FILE
    path.write_bytes(render(attribute_lines(*table), 2, lay))
    pd.testing.assert_frame_equal(celeba.read_attributes(path), expected_attributes(*table))


@fuzz(250)
@given(table=attribute_tables(), lay=layouts(), ops=byte_mutations())
def test_mutated_attribute_files_parse_or_fail_naming_the_file(work, table, lay, ops):
    path = fresh_dir(work) / ATTR_FILE
    path.write_bytes(mutate(render(attribute_lines(*table), 2, lay), ops))
    try:
        frame = celeba.read_attributes(path)
    except CelebAError as exc:
        assert names_the_file(exc, path), exc
        assert len(str(exc)) < 1000, "message too long"
        event(f"refused: {_why(exc, path)}")
        return
    event("parsed")
    check_attribute_frame(frame)


@fuzz(60)
@given(data=st.binary(max_size=400))
def test_random_bytes_as_celeba_files(work, data):
    d = fresh_dir(work)
    for name in (ATTR_FILE, PARTITION_FILE):
        (d / name).write_bytes(data)
    try:
        check_attribute_frame(celeba.read_attributes(d / ATTR_FILE))
    except CelebAError as exc:
        assert names_the_file(exc, d / ATTR_FILE), exc
    try:
        celeba.read_partition(d / PARTITION_FILE, pd.Series(["000001.jpg"]))
    except CelebAError as exc:
        assert names_the_file(exc, d / PARTITION_FILE), exc


@st.composite
def partitions(draw):
    n = draw(st.integers(1, 8))
    ids = [f"{i + 1:06d}.jpg" for i in range(n)]
    codes = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))  # the partition file may list the images in another order
    return ids, codes, order


@fuzz(150)
@given(part=partitions(), lay=layouts(), ops=st.none() | byte_mutations())
def test_partition_files_parse_or_fail_naming_the_file(work, part, lay, ops):
    ids, codes, order = part
    lines = [f"{ids[i]} {codes[i]}" for i in order]
    data = render(lines, 0, lay)
    path = fresh_dir(work) / PARTITION_FILE
    path.write_bytes(data if ops is None else mutate(data, ops))
    try:
        split = celeba.read_partition(path, pd.Series(ids))
    except CelebAError as exc:
        assert ops is not None, f"a valid file was refused: {exc}"
        assert names_the_file(exc, path), exc
        event(f"refused: {_why(exc, path)}")
        return
    event("parsed")
    assert len(split) == len(ids) and set(split) <= {"train", "valid", "test"}
    if ops is None:
        assert split.tolist() == [celeba.SPLIT_CODES[c] for c in codes]


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return write_mini_celeba(
        tmp_path_factory.mktemp("celeba") / "src", n=6, size=(24, 30), split_counts={"train": 4, "valid": 1, "test": 1}
    )


@fuzz(12)
@given(which=st.sampled_from([ATTR_FILE, PARTITION_FILE]), ops=st.one_of(byte_mutations(2), st.just([("crlf",)])))
def test_prepare_on_mutated_celeba_files_leaves_no_partial_data_set(work, mini, which, ops):
    """The whole prepare job: a data set, or one CelebAError naming the file and nothing written."""
    import shutil

    d = fresh_dir(work)
    root = Path(shutil.copytree(mini, d / "src"))
    (root / which).write_bytes(mutate((root / which).read_bytes(), ops))
    out = d / "out"
    try:
        jobs.prepare({"source": "celeba", "root": str(root), "resolution": 16}, *prepared_files(out))
    except CelebAError as exc:
        assert names_the_file(exc, root / which, root), exc
        assert_no_partial_output(out)
        event(f"refused: {_why(exc, root / which)}")
        return
    event("prepared")
    index = store.load_index(out / "index.parquet")
    assert len(index) == len(store.load_images(out / "images.npy"))
    assert sorted(p.name for p in out.iterdir()) == ["images.npy", "index.parquet"]


# ================================================================= config checks
BASE_CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def snakefile_checks(config) -> str | list[str]:
    """The checks of workflow/rules/common.smk, in its order; 'ok' or the messages.

    Only the error kinds the Snakefile turns into one ``invalid config`` message are caught.
    """
    from snakemake.utils import validate

    from prunebias.data.synthetic import ATTRIBUTES, CELEBA_ORDER
    from prunebias.tasks import check_experiments, tasks_from_config

    for check in (unknown_keys, schema_errors):
        messages = check(config, SCHEMA)
        if messages:
            return messages
    validate(config, str(SCHEMA_PATH))
    try:
        check_config(config, SCHEMA)
    except ConfigError as exc:
        return str(exc).splitlines()
    problems = check_experiments(config, {"synthetic": ATTRIBUTES, "celeba": CELEBA_ORDER})
    if problems:
        return problems
    # What the Snakefile computes next from a config that passed.
    tasks_from_config(config)
    for method in ["dense", *config["grid"].get("methods", [])]:
        train_spec(config, method)
    return "ok"


def config_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from config_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from config_paths(v, prefix + (i,))


PATHS = [p for p in config_paths(BASE_CONFIG) if p]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["", "0.9", "synth", "gmp", "\x00", "é", "yes", "1e400", ".nan"])
)
VALUES = st.recursive(
    SCALARS,
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=6) | st.integers(), ch, max_size=3),
    max_leaves=6,
)
CONFIG_OP = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), VALUES),
    st.tuples(st.just("delete"), st.sampled_from(PATHS)),
    st.tuples(
        st.just("add_key"), st.sampled_from([()] + PATHS), st.text(min_size=1, max_size=8) | st.integers(), VALUES
    ),
    st.tuples(st.just("typo"), st.sampled_from(PATHS), st.integers(0, 7)),
    st.tuples(
        st.just("number"),
        st.sampled_from(PATHS),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 2**63, -(2**63), 0, -1, 1, 0.5, 1e-320]),
    ),
)


def apply_config_op(config, op):
    kind, path = op[0], op[1]
    parent = config
    for key in path[:-1]:
        if not isinstance(parent, (dict, list)):
            return config
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return config
    last = path[-1] if path else None
    if kind == "add_key":
        target = parent[last] if path and isinstance(parent, (dict, list)) and _has(parent, last) else parent
        if isinstance(target, dict):
            target[op[2]] = op[3]
        return config
    if not isinstance(parent, (dict, list)) or not _has(parent, last):
        return config
    if kind in ("set", "number"):
        parent[last] = op[2]
    elif kind == "delete":
        del parent[last]
    elif kind == "typo" and isinstance(parent, dict) and isinstance(last, str) and last:
        i = op[2] % len(last)
        parent[last[:i] + last[i + 1 :] + last[i]] = parent.pop(last)
    return config


def _has(container, key) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and 0 <= key < len(container)


@fuzz(150)
@given(ops=st.lists(CONFIG_OP, min_size=1, max_size=3))
def test_mutated_configs_pass_or_give_messages_naming_the_key(ops):
    config = copy.deepcopy(BASE_CONFIG)
    for op in ops:
        config = apply_config_op(config, op)
    result = snakefile_checks(config)
    event("passed the checks" if result == "ok" else "refused")
    if result == "ok":
        assert not _non_finite_numbers(config), "a NaN/inf number passed the checks"
        return
    assert result and all(isinstance(m, str) and m.strip() for m in result)
    # Each message names a key: a dotted key (or <config>) before the colon, or the unknown key.
    for message in result:
        assert message.startswith("unknown config key '") or ":" in message, message


def _non_finite_numbers(value) -> list:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [x for v in items for x in _non_finite_numbers(v)]


@fuzz(30)
@given(config=VALUES)
def test_random_documents_as_the_config(config):
    result = snakefile_checks(config)
    assert result != "ok" and all(isinstance(m, str) for m in result)


def test_nan_and_inf_numbers_are_refused_naming_the_key():
    config = copy.deepcopy(BASE_CONFIG)
    config["grid"]["sparsities"] = [0.9, math.nan]
    config["train"]["optimizer"]["lr"] = math.inf
    messages = snakefile_checks(config)
    assert "grid.sparsities.1: nan is not a finite number" in messages, messages
    assert "train.optimizer.lr: inf is not a finite number" in messages, messages


# ================================================================= predictions -> metrics


@pytest.fixture(scope="module")
def clean(tiny_data, work):
    """Clean valid/test predictions for the tiny data set, and the metrics they give."""
    index = store.load_index(tiny_data / "index.parquet")
    attrs = store.attribute_names(index)
    rng = np.random.default_rng(0)
    frames, metas = {}, {}
    for split in ("valid", "test"):
        ids = index.loc[index["split"] == split, "id"].to_numpy()
        frame = pd.DataFrame(rng.normal(0, 2, (len(ids), len(attrs))).astype(np.float32), columns=attrs)
        frame.insert(0, "id", ids)
        frames[split] = frame
        metas[split] = {
            "dataset": "synth",
            "task": "joint",
            "arch": "small_cnn",
            "method": "dense",
            "target_sparsity": 0.0,
            "seed": 1,
            "selected_epoch": 0,
            "measured_sparsity": 0.0,
            "attributes": attrs,
            "split": split,
        }
    d = work / "clean"
    for split in frames:
        write_parquet(frames[split], d / f"{split}.parquet", metadata=metas[split])
    jobs.model_metrics(
        tiny_data / "index.parquet", d / "valid.parquet", d / "test.parquet", d / "metrics.parquet", SETTINGS
    )
    return {"frames": frames, "metas": metas, "metrics": pd.read_parquet(d / "metrics.parquet"), "index": index}


BAD_NUMBERS = [math.nan, math.inf, -math.inf]
HUGE_NUMBERS = [3.0e38, -3.0e38, 1e-45, 1e300, -1e300]
FRAME_OP = st.one_of(
    st.tuples(st.just("cell"), st.floats(0, 1), st.integers(0, 50), st.sampled_from(BAD_NUMBERS + HUGE_NUMBERS)),
    st.tuples(st.just("dup_id"), st.floats(0, 1), st.floats(0, 1)),
    st.tuples(st.just("drop_col"), st.integers(0, 50)),
    st.tuples(st.just("rename_col"), st.integers(0, 50), st.sampled_from(["", "id", "Male ", "é", "x\x00y", "1"])),
    st.tuples(st.just("astype"), st.integers(0, 50), st.sampled_from(["int64", "str", "bool", "float64", "float16"])),
    st.tuples(st.just("extra_col"), st.sampled_from(["note", "Male_", "split"])),
    st.tuples(st.just("rows"), st.sampled_from(["shuffle", "empty", "half", "first"])),
    st.tuples(st.just("foreign_id"), st.floats(0, 1), st.sampled_from(["999999.jpg", "", "\x00", "other-split"])),
    st.tuples(
        st.just("meta"),
        st.sampled_from(["dataset", "task", "seed", "target_sparsity", "attributes", "method"]),
        st.sampled_from(["<drop>", None, "x", 1.5, True, [], "backdoor-nope"]),
    ),
)
FILE_OP = st.one_of(
    st.tuples(st.just("bytes"), byte_mutations(2)),
    st.tuples(st.just("no_metadata")),
    st.tuples(st.just("bad_metadata_json"), st.sampled_from([b"{", b"[1, 2]", b"\xff\xfe", b"null", b"NaN"])),
    st.tuples(st.just("as_text"), st.sampled_from(["csv", "utf-16", "latin-1", "empty", "nul"])),
)
CHANGES_NOTHING = {("rows", "shuffle"), ("astype", "float64")}


def apply_frame_op(frame: pd.DataFrame, meta: dict, op, index: pd.DataFrame, split: str):
    kind = op[0]
    # Logit columns: numeric ones (after a rename, the id column may go by another name).
    attrs = [c for c in frame.columns if c != "id" and frame[c].dtype.kind in "fiub"]
    has_id = list(frame.columns).count("id") == 1  # a rename may have made two
    if kind == "cell" and attrs and len(frame):
        col = attrs[op[2] % len(attrs)]
        frame[col] = frame[col].astype(np.float64)
        frame.loc[int(op[1] * (len(frame) - 1)), col] = op[3]
    elif kind == "dup_id" and has_id and len(frame) > 1:
        i, j = int(op[1] * (len(frame) - 1)), int(op[2] * (len(frame) - 1))
        if i != j:
            frame.loc[i, "id"] = frame.loc[j, "id"]
    elif kind == "drop_col":
        frame = frame.drop(columns=frame.columns[op[1] % len(frame.columns)])
    elif kind == "rename_col":
        frame = frame.rename(columns={frame.columns[op[1] % len(frame.columns)]: op[2]})
    elif kind == "astype" and attrs:
        col = attrs[op[1] % len(attrs)]
        # An integer column cannot hold NaN or inf (pandas refuses the cast): no file has that mutation.
        if op[2] != "int64" or np.isfinite(frame[col].astype(np.float64)).all():
            frame[col] = frame[col].astype(op[2])
    elif kind == "extra_col":
        frame[op[1]] = "x" if op[1] == "note" else 0.5
    elif kind == "rows":
        frame = {
            "shuffle": frame.sample(frac=1, random_state=0),
            "empty": frame.iloc[:0],
            "half": frame.iloc[: len(frame) // 2],
            "first": frame.iloc[:1],
        }[op[1]].reset_index(drop=True)
    elif kind == "foreign_id" and has_id and len(frame):
        other = index.loc[index["split"] != split, "id"].iloc[0]
        frame.loc[int(op[1] * (len(frame) - 1)), "id"] = other if op[2] == "other-split" else op[2]
    elif kind == "meta":
        if op[2] == "<drop>":
            meta.pop(op[1], None)
        else:
            meta[op[1]] = op[2]
    return frame, meta


def apply_file_op(path: Path, op) -> None:
    kind = op[0]
    if kind == "bytes":
        path.write_bytes(mutate(path.read_bytes(), op[1]))
    elif kind in ("no_metadata", "bad_metadata_json"):
        table = pq.read_table(path)
        meta = dict(table.schema.metadata or {})
        if kind == "no_metadata":
            meta.pop(METADATA_KEY, None)
        else:
            meta[METADATA_KEY] = op[1]
        pq.write_table(table.replace_schema_metadata(meta), path)
    elif kind == "as_text":
        frame = pd.read_parquet(path)
        text = frame.to_csv(index=False)
        path.write_bytes(
            {
                "csv": text.encode(),
                "utf-16": text.encode("utf-16"),
                "latin-1": ("é" + text).encode("latin-1"),
                "empty": b"",
                "nul": b"\x00" * 64,
            }[op[1]]
        )


@fuzz(120)
@given(
    target=st.sampled_from(["valid", "test"]),
    frame_ops=st.lists(FRAME_OP, max_size=2),
    file_op=st.one_of(st.none(), st.none(), FILE_OP),
)
# Found by CI on 2026-12-06: a NaN cell, then the column cast to int64 (not a file anyone can write).
@example(target="valid", frame_ops=[("cell", 0.0, 0, math.nan), ("astype", 0, "int64")], file_op=None)
def test_metrics_stage_on_mutated_predictions(tiny_data, work, clean, target, frame_ops, file_op):
    d = fresh_dir(work)
    paths = {s: d / "pred" / f"{s}.parquet" for s in ("valid", "test")}
    for split, path in paths.items():
        frame, meta = clean["frames"][split].copy(), copy.deepcopy(clean["metas"][split])
        if split == target:
            for op in frame_ops:
                frame, meta = apply_frame_op(frame, meta, op, clean["index"], split)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError):
            event("not writable as Parquet")
            return  # not even writable as Parquet (e.g. a duplicated column name): nothing to read
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta, sort_keys=True).encode()}
        )
        path.parent.mkdir(exist_ok=True)
        pq.write_table(table, path)
        if split == target and file_op is not None:
            apply_file_op(path, file_op)
    out = d / "metrics" / "m.parquet"
    try:
        jobs.model_metrics(tiny_data / "index.parquet", paths["valid"], paths["test"], out, SETTINGS)
    except (ValueError, FileNotFoundError) as exc:
        assert names_the_file(exc, paths[target]), exc
        assert "\n" not in str(exc) and len(str(exc)) < 1500, exc
        assert_no_partial_output(d / "metrics")
        event(f"refused: {_why(exc, paths[target])}")
        return
    event("metrics written")
    result = pd.read_parquet(out)
    reference = clean["metrics"]
    assert list(result.columns) == list(reference.columns) and len(result) > 0
    if file_op is None and {op[:2] for op in frame_ops} <= CHANGES_NOTHING:
        pd.testing.assert_frame_equal(result, reference, check_exact=False, rtol=1e-6)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_logits_are_refused_naming_file_and_column(tiny_data, clean, tmp_path, value):
    frame = clean["frames"]["test"].copy()
    frame["Young"] = frame["Young"].astype(np.float32)
    frame.loc[3, "Young"] = value
    path = tmp_path / "test.parquet"
    write_parquet(frame, path, metadata=clean["metas"]["test"])
    with pytest.raises(ValueError) as err:
        read_predictions(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: non-finite logits (NaN or inf) in column(s) ['Young']"), msg
    assert repr(frame.loc[3, "id"]) in msg


def test_missing_predictions_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/nope.parquet: missing"):
        read_predictions(tmp_path / "nope.parquet")
