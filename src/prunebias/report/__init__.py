"""The audit report: one self-contained HTML file from the workflow's tables, figures and data.

One module per concern, each imported from where it lives (nothing is re-exported here):
:mod:`~prunebias.report.format` turns numbers and names into text, :mod:`~prunebias.report.grid`
walks the settings and methods of a table, :mod:`~prunebias.report.curves` averages over seeds,
:mod:`~prunebias.report.sentences` writes the headline findings, :mod:`~prunebias.report.tables`
holds the table model with the key, group-gap and criteria tables,
:mod:`~prunebias.report.runs` the tables of what was run, :mod:`~prunebias.report.gallery` the
cards of the most susceptible samples, :mod:`~prunebias.report.captions` the captions and figure
entries, and :mod:`~prunebias.report.context` gathers all of it for the template. Those are pure;
:mod:`~prunebias.report.render` is the I/O edge: it reads the inputs, renders the Jinja2 template
and writes ``results/report.html`` (:func:`~prunebias.report.render.build_report`, what the
command line calls).
"""
