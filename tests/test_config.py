import pytest

from gridnoise.config import (
    AdaptationConfig,
    RunConfig,
    adaptation_for,
    dumps_toml,
    from_dict,
    load_run_config,
)
from gridnoise.errors import ConfigError


def test_toml_roundtrip(tmp_path):
    cfg = RunConfig(dataset="dino", variant="multiscale_l1", adaptation=adaptation_for("multiscale_l1"), seed=3)
    cfg.train.steps = 123
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(cfg))
    assert load_run_config(path) == cfg


def test_variant_without_adaptation_table_uses_preset(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('variant = "grid20"\ndataset = "line"\n[train]\nsteps = 5\n')
    cfg = load_run_config(path)
    assert cfg.adaptation == adaptation_for("grid20") and cfg.train.steps == 5


@pytest.mark.parametrize("text, message", [
    ('dataset = "spiral"', "unknown data set 'spiral'"),
    ('[train]\nsteps = 0', "steps must be >= 1"),
    ('[diffusion]\nnum_timesteps = 1', "T must be >= 2"),
    ('[train]\nstepz = 10', "unknown key"),
    ('[train]\nsteps = "ten"', "train.steps must be int"),
    ('[diffusion]\nbeta_schedule = "sigmoid"', "not allowed"),
    ('[adaptation]\nkind = "seed_grid"\ngrids = { grid = 0 }', "grid sizes must be >= 1"),
    ('[adaptation]\nkind = "seed_grid"\ngrids = { grid = 4 }\nl1 = { fine = 0.1 }', "unknown grid"),
    ('[adaptation]\nkind = "seed_grid"\ngrids = { grid = 4 }\nextent = [1.0, -1.0, -1.0, 1.0]', "is empty"),
    ('[adaptation]\nkind = "seed_grid"', "at least one grid"),
    ('variant = "grid99"', "unknown variant 'grid99'"),
    ('dataset = ', "malformed TOML"),
])
def test_bad_configs_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_run_config(path)
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_run_config("/nonexistent/c.toml")


def test_int_accepted_for_float():
    cfg = from_dict(RunConfig, {"train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_the_former_kind_name_loads_and_hashes_as_before(tmp_path):
    from gridnoise.config import comparable_dict
    from gridnoise.study.experiment import config_hash

    old = tmp_path / "old.toml"
    old.write_text('variant = "grid10"\n[adaptation]\nkind = "seed_grid"\ngrids = { grid = 10 }\n')
    cfg = load_run_config(old)
    assert cfg.adaptation.kind == "original_grid"
    assert comparable_dict(cfg)["adaptation"]["kind"] == "seed_grid"  # finished studies keep their hashes
    new = RunConfig(variant="grid10", adaptation=adaptation_for("grid10"))
    assert config_hash(cfg) == config_hash(new)
    assert from_dict(RunConfig, {"adaptation": {"kind": "seed_grid", "grids": {"g": 2}}}).adaptation.kind == \
        "original_grid"


def test_a_config_built_in_python_resolves_its_variants_preset():
    # built with only a variant, a config trains that variant, not plain DDPM
    assert RunConfig(variant="grid10").adaptation == adaptation_for("grid10")
    assert RunConfig(variant="multiscale_l1_data").adaptation.extent_from_data
    assert RunConfig().adaptation.kind == "none"
    explicit = AdaptationConfig(kind="conditioning", grids={"g": 3})
    assert RunConfig(variant="grid10", adaptation=explicit).adaptation is explicit  # a given table wins
    assert from_dict(RunConfig, {"variant": "grid20"}).adaptation.grids == {"grid": 20}
    with pytest.raises(ConfigError, match="unknown variant 'grid7'"):
        RunConfig(variant="grid7")
