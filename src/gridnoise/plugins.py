"""Plug-ins: adaptations and data sets that live outside the package.

A name that is not built in is looked up, in this order:

- `"package.module:Name"`: imported from `package.module` (anything importable: an installed
  package, or a directory on PYTHONPATH);
- an installed entry point of that name, in the group `gridnoise.adaptations` (adaptation
  classes) or `gridnoise.datasets` (data set functions), declared in the plug-in's packaging:

      [project.entry-points."gridnoise.adaptations"]
      smooth_grid = "mypackage.adaptations:SmoothGrid"

An adaptation plug-in is a subclass of `gridnoise.adaptation.NoiseAdaptation` (usually of
`GridAdaptation`); a data set plug-in is a function `(n, rng) -> (n, 2)` array, rng a numpy
`Generator` seeded from the data seed. Study workers import plug-ins by the same name, so every
Dask worker needs the plug-in installed or on its PYTHONPATH.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from gridnoise.adaptation import (
    ConditioningGridAdaptation,
    NoiseAdaptation,
    OriginalGridAdaptation,
    ReverseVarianceGridAdaptation,
)
from gridnoise.continuous import CellLatentNoise, ContinuousNoise, GaussianLatentNoise
from gridnoise.errors import ConfigError, DataError, GridnoiseError

# The built-in kinds (`adaptation.kind` in a config) -> class; "none" is plain DDPM.
ADAPTATIONS: dict[str, type[NoiseAdaptation]] = {
    "none": NoiseAdaptation,
    "original_grid": OriginalGridAdaptation,
    "conditioning": ConditioningGridAdaptation,
    "reverse_variance": ReverseVarianceGridAdaptation,
    "vdm": ContinuousNoise,
    "mulan": GaussianLatentNoise,
    "mulan_cells": CellLatentNoise,
}
ADAPTATION_GROUP = "gridnoise.adaptations"
DATASET_GROUP = "gridnoise.datasets"


def is_reference(name: str) -> bool:
    """Whether `name` has the "module:attribute" form of a plug-in reference."""
    module, _, attribute = name.partition(":")
    return bool(module) and bool(attribute) and ":" not in attribute


def installed(group: str) -> dict[str, Any]:
    """Entry points of `group` by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_reference(name: str, what: str, error: type[GridnoiseError] = ConfigError) -> Any:
    """The object `module:attribute` names; any failure is a one-line `error`."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # a plug-in's import can fail in any way
        raise error(f"{what} '{name}': cannot import module '{module_name}' ({type(e).__name__}: "
                          f"{_first_line(e)}) - install it, or put its directory on PYTHONPATH") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise error(f"{what} '{name}': module '{module_name}' has no '{attribute}'") from None


def load_plugin(name: str, group: str, what: str, error: type[GridnoiseError] = ConfigError) -> Any | None:
    """A plug-in object by reference or entry-point name, or None when `name` is neither."""
    if is_reference(name):
        return load_reference(name, what, error)
    points = installed(group)
    if name in points:
        try:
            return points[name].load()
        except Exception as e:
            raise error(f"{what} '{name}': its entry point {points[name].value} fails to load "
                              f"({type(e).__name__}: {_first_line(e)})") from None
    return None


def adaptation_class(kind: str) -> type[NoiseAdaptation]:
    """The `NoiseAdaptation` subclass an `adaptation.kind` names: built in, "module:Class" or an
    installed entry point; anything else is a one-line ConfigError."""
    if kind in ADAPTATIONS:
        return ADAPTATIONS[kind]
    cls = load_plugin(kind, ADAPTATION_GROUP, "adaptation")
    if cls is None:
        choices = ", ".join([*ADAPTATIONS, *installed(ADAPTATION_GROUP)])
        raise ConfigError(f"unknown adaptation kind '{kind}': use one of {choices}, or a plug-in class "
                          "as module:Class")
    if not (isinstance(cls, type) and issubclass(cls, NoiseAdaptation)):
        raise ConfigError(f"adaptation '{kind}' is not a subclass of gridnoise.adaptation.NoiseAdaptation")
    return cls


def dataset_function(name: str) -> Any | None:
    """The generator `(n, rng) -> (n, 2)` a data set plug-in name refers to, or None if `name` is not one."""
    fn = load_plugin(name, DATASET_GROUP, "data set", DataError)
    if fn is not None and not callable(fn):
        raise DataError(f"data set '{name}' is not a function (n, rng) -> (n, 2) array")
    return fn


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""
