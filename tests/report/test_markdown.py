"""The Markdown renderer of report sections."""

from pathlib import Path

from gridnoise.report import markdown
from gridnoise.report.sections import Figure, Report, Section, Table


def test_a_report_renders_headings_blocks_tables_and_relative_figure_links(tmp_path):
    figure = tmp_path / "figs" / "loss.png"
    report = Report("Study report: x", [
        Section(None, ["intro", Table(["a", "b"], [["1", "2"]])]),
        Section("Tables", [Table(["run"], [["r1"], ["r2"]], title="KL")]),
        Section(None),  # a section with nothing to say
        Section("Figures", [Figure(figure, "loss")]),
    ])
    text = markdown.render(report, tmp_path)
    assert text == ("# Study report: x\n\nintro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Tables\n\n### KL\n\n"
                    "| run |\n|---|\n| r1 |\n| r2 |\n\n## Figures\n\n![loss](figs/loss.png)\n")  # the empty one: no gap
    assert "](../figs/loss.png)" in markdown.render(report, tmp_path / "docs")


def test_a_table_without_rows_keeps_its_header():
    assert markdown.table(Table(["x", "y"], [])) == "| x | y |\n|---|---|"
    assert markdown.section(Section("Empty"), Path(".")) == "## Empty"
