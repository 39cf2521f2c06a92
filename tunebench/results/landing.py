"""The report's front page: per model, the E/F/O table, the trade-off plot and every method's
training loss per downstream set, then where the rest of the report is. Written as the
reStructuredText that `snakemake --report` renders as its landing page (the Snakefile's `report:`):
one raw HTML block with the images inlined, so the results need no click."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from textwrap import indent
from urllib.parse import quote

# The report shows its description in a narrow column beside the rule graph, vertically centred.
# These rules (on Snakemake 9's report markup, and only where this page is) give the page the full
# width from the top and put the rule graph below it.
STYLE = """
.h-screen:has(.tunebench-landing) { align-items: flex-start; justify-content: flex-start; }
.flex:has(> div > .prose .tunebench-landing) { flex-wrap: wrap; }
.prose:has(.tunebench-landing) { max-width: none; }
.tunebench-landing table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; width: auto; }
.tunebench-landing th, .tunebench-landing td { padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: center; }
.tunebench-landing td:first-child { text-align: left; }
.tunebench-landing .figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.tunebench-landing .figures img { margin: 0; }
"""
# Where the rest is: the report's categories (workflow/rules/report.smk).
SECTIONS = [("Predictions", "what the models answered, per cell"),
            ("Scores", "zero-shot against tuned scores per set"),
            ("Training loss", "per downstream set and per cell"),
            ("Cells", "trainable parameters, time, memory and provenance of every cell"),
            ("Tables", "the table as HTML, Markdown, CSV and LaTeX"),
            ("Provenance", "config, commits, hardware and file hashes behind each table")]


def image(path: Path, width: int, alt: str) -> str:
    # In lines of 76 (browsers skip whitespace in base64): docutils refuses lines over 10,000 characters.
    data = base64.encodebytes(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" width="{width}" alt="{html.escape(alt)}">'


def body(page: str) -> str:
    """What an HTML page shows: the inside of its <body>."""
    found = re.search(r"<body[^>]*>(.*)</body>", page, re.S)
    return found.group(1) if found else page


def model_section(model: str, table_html: Path, tradeoff: Path, loss: dict[str, Path]) -> str:
    return (f"<h2>{html.escape(model)}</h2>\n" + body(Path(table_html).read_text())
            + '<div class="figures">' + image(tradeoff, 560, f"{model}: E against F")
            + "".join(image(path, 480, f"{model}: training loss on {dataset}") for dataset, path in loss.items())
            + "</div>\n")


def landing_rst(study: str, models: list[dict]) -> str:
    """`models`: per model its name, table (HTML), trade-off plot and loss figures (per downstream set)."""
    links = "".join(f"<li><a href=\"javascript:app.showCategory('{quote(name)}')\">{name}</a>: {what}</li>"
                    for name, what in SECTIONS)
    page = (f'<style>{STYLE}</style>\n<div class="tunebench-landing">\n'
            f"<h1>tunebench study {html.escape(study)}</h1>\n"
            "<p>What tuning gains on each downstream set (E, over the zero-shot model) and how much it changes "
            "the upstream sets the model already knew (F, negative = forgetting), per method; mean ± std over "
            "seeds.</p>\n"
            + "".join(model_section(**m) for m in models)
            + f"<h2>More in this report</h2>\n<ul>{links}</ul>\n</div>")
    # {% raw %}: the report renders this file as a Jinja template first.
    return "{% raw %}\n.. raw:: html\n\n" + indent(page, "   ", lambda line: True) + "\n\n{% endraw %}\n"
