"""Reference pages generated from the code, so that nothing is written twice.

Directives, each reading the one home of what it lists:

- `gridnoise-cli`: every command of `gridnoise.cli.build_parser()`, with its usage and options, as
  `--help` shows them;
- `gridnoise-config`: every setting of a config or experiment file, with its type, default and the
  comment beside it in the dataclass (`gridnoise.config`, `[tune]`: `study.search.TuneSettings`,
  `[cluster]`: `study.cluster.SlurmSettings`);
- `gridnoise-metrics`: every metric of `gridnoise.registry.METRICS`;
- `gridnoise-variants`: every named variant of `gridnoise.presets.VARIANTS`, the adaptation kinds of
  `gridnoise.plugins.ADAPTATIONS` and the samplers of `gridnoise.registry.SAMPLERS`;
- `gridnoise-api`: the public names of `gridnoise.__all__`, through autodoc (use it inside an
  `eval-rst` block: it emits reStructuredText).

Every section and row carries an id, which is also a label (`cli-train`, `config-train-lr`,
`metric-w2`, `variant-grid10`, ...), so pages can link to it and tests/docs can check that each
name the code knows is on its page.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import io
import json
import re
import textwrap
import tokenize
import typing
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

import gridnoise
from gridnoise.cli import build_parser
from gridnoise.config import AdaptationConfig, RunConfig
from gridnoise.plugins import ADAPTATIONS
from gridnoise.presets import ORIGINAL_EXTENT, VARIANTS
from gridnoise.registry import METRICS, SAMPLERS
from gridnoise.study.cluster import SlurmSettings
from gridnoise.study.search import TuneSettings

# (table, dataclass, what it is): a config file's tables in the order of `RunConfig`, then the
# experiment file's own tables. "" is the top level of a config file.
EXPERIMENT_TABLES: tuple[tuple[str, type, str], ...] = (
    ("tune", TuneSettings, "an experiment file's `[tune]` table: how `gridnoise tune` tunes it"),
    ("cluster", SlurmSettings, "an experiment file's `[cluster]` table: the Slurm jobs of `--cluster slurm`; "
                               "unset (none) leaves a setting to dask-jobqueue's configuration"),
)


def field_comments(cls: type) -> dict[str, str]:
    """Each dataclass field's comment in the source: the block of comment lines right above it and
    the comment at the end of its line, joined."""
    lines, _ = inspect.getsourcelines(cls)
    source = textwrap.dedent("".join(lines))
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    text = source.splitlines()
    found: dict[str, str] = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for stmt in body.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above: list[str] = []
        line = stmt.lineno - 1
        while line >= 1 and text[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        after = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments]
        found[stmt.target.id] = " ".join(above + after).strip()
    return found


def config_tables() -> list[tuple[str, type, str]]:
    """(table, dataclass, what it is) for every table of a config file, then an experiment file's."""
    hints = typing.get_type_hints(RunConfig)
    tables = [("", RunConfig, "the top level of a config file (and of a run in an experiment file)")]
    for f in dataclasses.fields(RunConfig):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            own_doc = not (hint.__doc__ or "").startswith(f"{hint.__name__}(")  # not dataclass's generated one
            tables.append((f.name, hint, _first_paragraph(hint) if own_doc else field_comments(RunConfig)[f.name]))
    return [*tables, *EXPERIMENT_TABLES]


def config_keys() -> list[str]:
    """Every documented key, dotted (`train.lr`; top-level keys bare)."""
    keys = []
    for table, cls, _ in config_tables():
        keys += [f"{table}.{f.name}" if table else f.name for f in _settings(cls, table)]
    return keys


def _settings(cls: type, table: str) -> list[dataclasses.Field]:
    """The fields of `cls` that are settings of `table` (the top level leaves out the nested tables)."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls)
            if table or not (isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name]))]


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    return toml_value(value)


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML (none for Python's None: the setting is left unset)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value):
        return toml_value(dataclasses.asdict(value))  # type: ignore[arg-type]
    return repr(value)


def text_nodes(text: str) -> list[nodes.Node]:
    """`text` with its `code` spans as literals (the comments and docstrings write code that way)."""
    parts = re.split(r"`([^`]+)`", text)
    return [nodes.literal(p, p) if i % 2 else nodes.Text(p) for i, p in enumerate(parts) if p]


def sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def cell(content: str | list[nodes.Node], literal: bool = False) -> nodes.entry:
    if isinstance(content, str):
        content = [nodes.literal(content, content)] if literal else text_nodes(content)
    return nodes.entry("", nodes.paragraph("", "", *content))


def label(directive: SphinxDirective, node_id: str, title: str) -> None:
    """Make `node_id` a label, so any page can link to it: {ref}`title <node_id>` in Markdown."""
    directive.env.get_domain("std").note_hyperlink_target(node_id, directive.env.docname, node_id, title)


def table(directive: SphinxDirective, headers: list[str], rows: list[tuple[str, list[nodes.entry]]],
          widths: list[int]) -> nodes.table:
    """A table of `rows`, each (id, cells); the id is set on the row and is a label, so
    `page.html#id` and {ref}`id` reach it."""
    group = nodes.tgroup(cols=len(headers))
    for width in widths:
        group += nodes.colspec(colwidth=width)
    group += nodes.thead("", nodes.row("", *[cell(h) for h in headers]))
    body = nodes.tbody()
    for row_id, cells in rows:
        row = nodes.row("", *cells)
        row["ids"].append(row_id)
        label(directive, row_id, cells[0].astext())
        body += row
    group += body
    return nodes.table("", group, classes=["gridnoise-reference"])


def section(directive: SphinxDirective, title: str, section_id: str, *content: nodes.Node) -> nodes.section:
    node = nodes.section(ids=[section_id], names=[nodes.fully_normalize_name(title)])
    node += nodes.title("", "", *text_nodes(title))
    for child in content:
        node += child
    directive.state.document.note_implicit_target(node, node)
    label(directive, section_id, node[0].astext())
    return node


def row_id(prefix: str, name: str) -> str:
    return f"{prefix}-{nodes.make_id(name)}"


class ConfigReference(SphinxDirective):
    """Every setting: a section per table, a row per key (its type, default and comment)."""

    def run(self) -> list[nodes.Node]:
        out = []
        for name, cls, what in config_tables():
            comments = field_comments(cls)
            rows = []
            for f in _settings(cls, name):
                key = f"{name}.{f.name}" if name else f.name
                rows.append((row_id("config", key), [cell(key, literal=True), cell(str(f.type), literal=True),
                                                      cell(_default(f), literal=True),
                                                      cell(comments.get(f.name, ""))]))
            title = f"`[{name}]`" if name else "Top level"
            intro = nodes.paragraph("", "", *text_nodes(sentence(what)))
            out.append(section(self, title, row_id("config-table", name or "top-level"), intro,
                               table(self, ["key", "type", "default", "what it does"], rows, [18, 16, 16, 50])))
        return out


def commands(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = (),
             what: str = "") -> list[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command as (its words after `gridnoise`, its parser, what it does), the top level first,
    depth first."""
    parser = parser or build_parser()
    found = [(path, parser, what or parser.description or "")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found += commands(sub, (*path, name), helps[name])
    return found


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A parser's options and positional arguments, as `--help` lists them (its commands apart)."""
    return [a for a in parser._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]


def option_name(action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else action.dest


class CliReference(SphinxDirective):
    """A section per command: what it does, its usage, its commands and a row per option, in the
    words of `--help`."""

    def run(self) -> list[nodes.Node]:
        found = commands()
        out = []
        for path, parser, what in found:
            key = " ".join(path) or "gridnoise"
            formatter = parser._get_formatter()
            body: list[nodes.Node] = [nodes.paragraph("", "", *text_nodes(what))] if what else []
            body.append(nodes.literal_block(text=parser.format_usage().strip().removeprefix("usage: ")))
            children = [(p, w) for p, _, w in found if len(p) == len(path) + 1 and p[:len(path)] == path]
            if children:
                body.append(table(self, ["command", "what it does"], [
                    (row_id("cli-command", " ".join(p)),
                     [cell([nodes.reference("", "", nodes.literal("", f"gridnoise {' '.join(p)}"),
                                            refid=row_id("cli", " ".join(p)))]), cell(w)])
                    for p, w in children], [30, 70]))
            rows = [(row_id("cli", f"{key} {option_name(a)}"),
                     [cell(formatter._format_action_invocation(a), literal=True),
                      cell(formatter._expand_help(a) if a.help else "")]) for a in options(parser)]
            if rows:
                body.append(table(self, ["option", "what it does"], rows, [35, 65]))
            if parser.epilog:
                body.append(nodes.paragraph("", "", *text_nodes(parser.epilog)))
            out.append(section(self, f"`{' '.join(('gridnoise', *path))}`", row_id("cli", key), *body))
        return out


def direction(metric) -> str:
    return {"lower": "lower", "higher": "higher", None: "-"}[metric.direction]


SOURCES = {"training": "training (`metrics.json`)", "evaluate": "`gridnoise evaluate` (`evaluation.json`)",
           "derived": "`gridnoise evaluate`, with the metric it needs"}


class MetricsReference(SphinxDirective):
    """Every registered metric: its name, title, which way is better, and what it means: what it
    measures, what to beware of, its kind, where it is recorded and what it needs."""

    def run(self) -> list[nodes.Node]:
        rows = []
        for m in METRICS.values():
            meaning = f"{m.description.rstrip('.')}." + (f" Caveat: {m.caveat.rstrip('.')}." if m.caveat else "")
            meaning += f" A {m.kind} metric, recorded by {SOURCES[m.source]}; needs {', '.join(m.needs) or 'nothing'}."
            rows.append((row_id("metric", m.name), [cell(m.name, literal=True), cell(m.title), cell(direction(m)),
                                                    cell(meaning)]))
        return [table(self, ["metric", "title", "better", "meaning"], rows, [16, 18, 8, 58])]


def _first_paragraph(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")


def _grids(preset: dict) -> str:
    """A preset's grids (cells per side) and the rectangle they cover."""
    if not preset.get("grids"):
        return "-"
    grids = " x ".join(f"{g} {n}x{n}" for g, n in preset["grids"].items())
    xmin, xmax, ymin, ymax = ORIGINAL_EXTENT
    extent = "the data's extent (+5%)" if preset.get("extent_from_data") else \
        f"[{xmin:g}, {xmax:g}] x [{ymin:g}, {ymax:g}]"
    return f"{grids}, over {extent}"


def _samplers(cls: type) -> str:
    if cls.process == "continuous":
        return "ancestral (any number of steps)"
    return ", ".join(cls.supported_samplers)


class VariantsReference(SphinxDirective):
    """Every named variant (what it resolves to), then the adaptation kinds and the samplers."""

    def run(self) -> list[nodes.Node]:
        defaults = dataclasses.asdict(AdaptationConfig())
        variants = []
        for name, preset in VARIANTS.items():
            kind = preset["kind"]
            other = {k: v for k, v in preset.items() if k not in ("kind", "grids", "extent_from_data")
                     and v != defaults[k]}
            adaptation = [nodes.reference("", "", nodes.literal("", kind), refid=row_id("kind", kind))]
            if other:
                adaptation += [nodes.Text(", "), nodes.literal("", toml_value(other)[1:-1])]
            variants.append((row_id("variant", name), [cell(name, literal=True), cell(adaptation),
                                                       cell(_grids(preset)), cell(_samplers(ADAPTATIONS[kind]))]))
        kinds = [(row_id("kind", kind), [cell(kind, literal=True), cell(cls.__name__, literal=True),
                                        cell(_samplers(cls)), cell(_first_paragraph(cls))])
                 for kind, cls in ADAPTATIONS.items()]
        samplers = [(row_id("sampler", s.name), [cell(s.name, literal=True), cell(s.scheduler, literal=True),
                                                 cell(s.description)]) for s in SAMPLERS.values()]
        return [
            section(self, "Named variants", "named-variants",
                    table(self, ["variant", "adaptation", "grids (cells per side)", "samplers"], variants,
                          [22, 26, 32, 20])),
            section(self, "Adaptation kinds", "adaptation-kinds",
                    nodes.paragraph("", "", *text_nodes(
                        "The value of `adaptation.kind`: a built-in kind below, or a plug-in (`module:Class` or an "
                        "entry point of the group `gridnoise.adaptations`).")),
                    table(self, ["kind", "class", "samplers", "what it does"], kinds, [14, 20, 16, 50])),
            section(self, "Samplers", "samplers",
                    nodes.paragraph("", "", *text_nodes(
                        "The value of `sampler.sampler` and of `--sampler`; a variant supports those its kind lists.")),
                    table(self, ["sampler", "scheduler", "what it does"], samplers, [10, 10, 80])),
        ]


# The module that defines each public name that is data, not a class or function (its docstring says what it is).
DATA_MODULES = {**gridnoise._EXPORTS, "__version__": "gridnoise.version"}


class ApiReference(SphinxDirective):
    """`gridnoise.__all__` through autodoc: a summary table, then each name. Emits reStructuredText,
    so it must sit in an `eval-rst` block of a Markdown page."""

    def run(self) -> list[nodes.Node]:
        names = list(gridnoise.__all__)
        lines = [".. autosummary::", "", *[f"   gridnoise.{n}" for n in names if callable(getattr(gridnoise, n))], ""]
        for name in names:
            obj = getattr(gridnoise, name)
            target = f"gridnoise.{name}"
            if inspect.isclass(obj):
                lines += [f".. autoclass:: {target}", "   :members:", "   :show-inheritance:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {target}", ""]
            else:  # data: documented by the module that defines it
                doc = _first_paragraph(importlib.import_module(DATA_MODULES[name]))
                lines += [f".. py:data:: {target}", f"   :type: {type(obj).__name__}", ""]
                if not isinstance(obj, dict):
                    lines += [f"   Value: ``{obj!r}``.", ""]
                lines += [f"   {doc}", ""]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="gridnoise.__all__"), self.content_offset, container)
        return container.children


def dataclass_signature(app, what, name, obj, options, signature, return_annotation):
    """A config dataclass's signature with each default written out: autodoc shows a default factory
    as `<factory>`, which is not Python and breaks the signature's parsing."""
    if what != "class" or not dataclasses.is_dataclass(obj) or signature is None or "<factory>" not in signature:
        return None
    hints = typing.get_type_hints(obj)
    params = []
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        if f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            default = f"{type(value).__name__}()" if dataclasses.is_dataclass(value) else repr(value)
        else:
            default = repr(f.default)
        annotation = inspect.formatannotation(hints[f.name])
        params.append(f"{f.name}: {annotation} = {default}")
    return f"({', '.join(params)})", return_annotation


def config_table_reference(app, env, node, contnode):
    """A type annotation naming a config table's dataclass (`DiffusionConfig`, `gridnoise.config.TrainConfig`,
    ...) links to that table's section of the configuration reference."""
    if node.get("refdomain") != "py" or node.get("reftype") not in ("class", "obj"):
        return None
    tables = {cls.__name__: name for name, cls, _ in config_tables() if name}
    target = node["reftarget"].rsplit(".", 1)[-1]
    if target not in tables:
        return None
    return make_refnode(app.builder, node.get("refdoc", ""), CONFIG_PAGE, row_id("config-table", tables[target]),
                        contnode, f"the [{tables[target]}] table")


CONFIG_PAGE = "reference/config"  # the page that holds `gridnoise-config`


def setup(app):
    app.connect("autodoc-process-signature", dataclass_signature)
    app.connect("missing-reference", config_table_reference)
    app.add_directive("gridnoise-cli", CliReference)
    app.add_directive("gridnoise-config", ConfigReference)
    app.add_directive("gridnoise-metrics", MetricsReference)
    app.add_directive("gridnoise-variants", VariantsReference)
    app.add_directive("gridnoise-api", ApiReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
