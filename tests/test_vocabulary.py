"""prunebias.vocabulary names each figure, table and method once; the modules that draw or
write them implement exactly those names."""

from prunebias import vocabulary
from prunebias.analysis import criteria
from prunebias.plots import figures, figures_criteria
from prunebias.report import tables as report_tables


def test_metric_figures_are_the_ones_drawn():
    assert tuple(figures.FIGURES) == vocabulary.METRIC_FIGURES


def test_criteria_figures_are_the_ones_drawn_from_criteria_tables():
    assert tuple(figures_criteria.FIGURES) == tuple(vocabulary.CRITERIA_FIGURES)
    tables = {t for names in vocabulary.CRITERIA_FIGURES.values() for t in names}
    assert tables <= set(vocabulary.CRITERIA_TABLES)


def test_criteria_tables_are_the_ones_written():
    assert set(criteria.TABLE_COLUMNS) == set(vocabulary.CRITERIA_TABLES)
    assert set(report_tables.CRITERIA_TABLES) <= set(vocabulary.CRITERIA_TABLES)


def test_every_method_has_a_label():
    assert set(vocabulary.METHOD_LABELS) == set(vocabulary.METHOD_LEGENDS) == set(vocabulary.METHODS)
