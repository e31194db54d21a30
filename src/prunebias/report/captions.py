"""Captions and figures: captions written in reStructuredText rendered to HTML, a caption's
underlined first line taken as its title, and the figure entries of the report (SVG preferred
over PNG, embedded as data URIs).

Pure: the I/O edge (:mod:`prunebias.report.render`) reads the caption files and figure bytes
and hands them here as text and bytes.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

from prunebias.report.tables import CRITERIA_TABLES

#: The tables whose captions (``reports/captions/tables/<name>.rst``) the report reads.
TABLE_CAPTIONS = ("summary", "group_gaps", "metrics", "shortcut_control", *CRITERIA_TABLES)
#: MIME type of each figure format the report embeds, in order of preference (SVG: sharp at any size).
FIGURE_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def caption_html(text: str) -> str:
    """Render a caption written in reStructuredText to an HTML fragment (docutils, no messages)."""
    from docutils.core import publish_parts

    parts = publish_parts(
        text,
        writer="html5",
        settings_overrides={
            "report_level": 5,
            "halt_level": 5,
            "embed_stylesheet": False,
            "raw_enabled": False,
            "file_insertion_enabled": False,
            "syntax_highlight": "none",
        },
    )
    return parts["body"]


def caption_title(text: str) -> tuple[str | None, str]:
    """Split a caption's first line off when it is followed by an rst underline (a title)."""
    lines = text.strip("\n").splitlines()
    if (
        len(lines) >= 2
        and lines[1]
        and set(lines[1].strip()) <= set("=-~^*#")
        and len(lines[1].strip()) >= len(lines[0].strip())
    ):
        return lines[0].strip(), "\n".join(lines[2:])
    return None, text


def table_caption_html(text: str) -> str:
    """A table caption as HTML, without its title (the report gives each table its own heading)."""
    return caption_html(caption_title(text)[1])


def figure_files(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(name, file) per figure name (file stem), in the order of ``paths``: its SVG, else its PNG.

    A name with neither is left out.
    """
    by_name: dict[str, dict[str, Path]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, {})[p.suffix.lower().lstrip(".")] = p
    out = []
    for name, files in by_name.items():
        kind = next((k for k in FIGURE_TYPES if k in files), None)
        if kind is not None:
            out.append((name, files[kind]))
    return out


def figure_entry(name: str, path: Path, data: bytes, caption: str | None) -> dict:
    """{"name", "title", "caption", "src"} of one figure: ``data``, the bytes of ``path``, as a data URI.

    ``caption``: the rst text of ``<captions>/<name>.rst`` (None: a note saying it is
    missing); a first line underlined in rst style is the title.
    """
    kind = path.suffix.lower().lstrip(".")
    src = f"data:{FIGURE_TYPES[kind]};base64," + base64.b64encode(data).decode("ascii")
    title = None
    if caption is not None:
        title, body = caption_title(caption)
        caption = caption_html(body)
    else:
        caption = f"<p><em>No caption: add reports/captions/{html.escape(name)}.rst.</em></p>"
    return {"name": name, "title": title or name.replace("_", " ").capitalize(), "caption": caption, "src": src}
