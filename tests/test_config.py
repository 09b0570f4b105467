from pathlib import Path

import pytest
import yaml

from pvg.config import ConfigError, PvgConfig, load_config
from pvg.errors import PvgError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def config_error(path, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_defaults_validate():
    cfg = load_config(None)
    assert cfg == PvgConfig()
    assert cfg.ppo.reward == "src"
    assert cfg.data.split.prover + cfg.data.split.verifier < 1
    assert issubclass(ConfigError, PvgError)


def test_load_yaml_file(tmp_path):
    p = write(tmp_path, "run:\n  name: exp-1\n  seed: 7\nppo:\n  lr: 1.0e-4\n  reward: cgc\ndata:\n  num_problems: 50\n")
    cfg = load_config(p)
    assert cfg.run.name == "exp-1" and cfg.run.seed == 7
    assert cfg.ppo.lr == pytest.approx(1e-4)
    assert cfg.ppo.reward == "cgc"
    assert cfg.data.num_problems == 50
    assert cfg.ppo.epochs == PvgConfig().ppo.epochs  # untouched keys keep their defaults


def test_empty_yaml_is_an_error_and_braces_are_the_defaults(tmp_path):
    # an empty file is a failed copy or the wrong file far more often than a wish for every default
    for text in ("", "\n", "# just a comment\n"):
        msg = config_error(write(tmp_path, text))
        assert "is empty" in msg and "{}" in msg, msg
    assert load_config(write(tmp_path, "{}\n")) == PvgConfig()


@pytest.mark.parametrize("text, needles", [
    ("ppo:\n  lr: 1.0e-4\ngame:\n  max_rounds: 2\nppo:\n  epochs: 2\n", ["'ppo' is given twice", "lines 1 and 5"]),
    ("ppo:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", ["'lr' is given twice", "lines 2 and 3"]),
    ("ppo:\n  lr: .inf\n", ["ppo.lr", "finite number"]),
    ("ppo:\n  lr: .nan\n", ["ppo.lr", "finite number"]),
    ("game:\n  fool_rate_bar: -.inf\n", ["game.fool_rate_bar", "finite number"]),
    ("run:\n  lock_stale_s: .inf\n", ["run.lock_stale_s", "finite number"]),
])
def test_config_edge_cases_are_clear_errors(tmp_path, text, needles):
    msg = config_error(write(tmp_path, text))
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg or msg.startswith("invalid config"), msg


def test_non_finite_set_override_and_yaml_merge_keys(tmp_path):
    assert "finite number" in config_error(None, ["ppo.lr=.inf"])
    # a merge key (`<<: *base`) followed by a key of its own is no duplicate
    text = "ppo:\n  <<: {epochs: 3, lr: 1.0e-4}\n  epochs: 4\n"
    assert load_config(write(tmp_path, text, "merge.yaml")).ppo.epochs == 4


def test_non_utf8_config_and_directory(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("run:\n  name: caf\xe9\n".encode("latin-1"))
    msg = config_error(p)
    assert "not UTF-8" in msg and str(p) in msg, msg
    msg = config_error(tmp_path)
    assert "is a directory" in msg and "not found" not in msg, msg


def test_set_overrides(tmp_path):
    p = write(tmp_path, "ppo:\n  lr: 0.01\n  epochs: 5\n")
    cfg = load_config(
        p,
        [
            "ppo.epochs=3",
            "ppo.lr=1e-4",
            "ppo.whiten_advantages=false",
            "logging.wandb=true",
            "data.flaw_kinds=[dropped_step, stale_value]",
            "data.split.prover=0.3",
            "resources.prover.gpus_per_actor=0.5",
            "resources.placement_strategy=SPREAD",
            "data.hub_config=null",
        ],
    )
    assert cfg.ppo.epochs == 3 and isinstance(cfg.ppo.epochs, int)
    assert cfg.ppo.lr == pytest.approx(1e-4)
    assert cfg.ppo.whiten_advantages is False
    assert cfg.logging.wandb is True
    assert cfg.data.flaw_kinds == ["dropped_step", "stale_value"]
    assert cfg.data.split.prover == pytest.approx(0.3)
    assert cfg.data.split.verifier == pytest.approx(0.45)
    assert cfg.resources.prover.gpus_per_actor == pytest.approx(0.5)
    assert cfg.resources.placement_strategy == "SPREAD"
    assert cfg.data.hub_config is None


def test_later_set_wins():
    assert load_config(None, ["ppo.epochs=3", "ppo.epochs=4"]).ppo.epochs == 4


def test_set_without_file_and_bad_syntax():
    assert load_config(None, ["game.max_rounds=2"]).game.max_rounds == 2
    assert "dotted.key=value" in config_error(None, ["ppo.lr"])


def test_partial_tiny_override_keeps_role_defaults():
    default = PvgConfig()
    cfg = load_config(None, ["verifier.tiny.num_layers=3", "prover.tiny.hidden_size=64"])
    assert cfg.verifier.tiny.num_layers == 3
    assert cfg.verifier.tiny.hidden_size == default.verifier.tiny.hidden_size
    assert cfg.verifier.tiny.intermediate_size == default.verifier.tiny.intermediate_size
    assert cfg.prover.tiny.intermediate_size == default.prover.tiny.intermediate_size


def test_unknown_key_in_yaml(tmp_path):
    p = write(tmp_path, "ppo:\n  lrr: 1\n")
    msg = config_error(p)
    assert str(p) in msg
    assert "ppo.lrr" in msg
    assert "unknown key" in msg
    allowed = msg.split("allowed here:", 1)[1]
    for key in ("lr", "epochs", "reward", "kl_coef"):
        assert key in allowed


def test_unknown_nested_and_top_level_keys(tmp_path):
    msg = config_error(write(tmp_path, "verifier:\n  tiny:\n    hidden: 32\n"))
    assert "verifier.tiny.hidden" in msg and "hidden_size" in msg
    msg = config_error(write(tmp_path, "trainer:\n  lr: 1\n", "top.yaml"))
    assert "trainer" in msg and "ppo" in msg and "data" in msg


def test_unknown_key_via_set(tmp_path):
    p = write(tmp_path, "ppo:\n  lr: 0.01\n")
    msg = config_error(p, ["ppo.lrr=1"])
    assert "ppo.lrr" in msg
    assert "lr" in msg.split("allowed", 1)[1]
    msg = config_error(p, ["pppo.lr=1"])
    assert "pppo" in msg and "ppo" in msg.split("allowed", 1)[1]
    msg = config_error(p, ["data.split.tesst=0.1"])
    assert "data.split.tesst" in msg and "verifier" in msg


def test_wrong_type(tmp_path):
    p = write(tmp_path, "ppo:\n  epochs: many\n")
    msg = config_error(p)
    assert str(p) in msg and "ppo.epochs" in msg and "integer" in msg and "many" in msg


@pytest.mark.parametrize(
    "text, key, hint",
    [
        ("ppo:\n  lr: -1\n", "ppo.lr", "greater than 0"),
        ("game:\n  fool_rate_bar: 2\n", "game.fool_rate_bar", "less than or equal to 1"),
        ("data:\n  num_problems: 3\n", "data.num_problems", "greater than or equal to 10"),
    ],
)
def test_out_of_range(tmp_path, text, key, hint):
    p = write(tmp_path, text)
    msg = config_error(p)
    assert str(p) in msg and key in msg and hint in msg


def test_bad_literal(tmp_path):
    p = write(tmp_path, "ppo:\n  reward: foo\n")
    msg = config_error(p)
    assert str(p) in msg and "ppo.reward" in msg
    for allowed in ("src", "cgc", "goodhart"):
        assert allowed in msg
    msg = config_error(None, ["data.flaw_kinds=[typo_kind]"])
    assert "data.flaw_kinds.0" in msg and "arithmetic_slip" in msg


def test_cross_field_split(tmp_path):
    p = write(tmp_path, "data:\n  split:\n    prover: 0.6\n    verifier: 0.5\n")
    msg = config_error(p)
    assert str(p) in msg and "data.split" in msg and "prover + verifier" in msg


def test_cross_field_steps(tmp_path):
    p = write(tmp_path, "data:\n  min_steps: 5\n  max_steps: 3\n")
    msg = config_error(p)
    assert str(p) in msg and "data" in msg and "min_steps" in msg and "max_steps" in msg
    msg = config_error(p, ["data.max_steps=4"])
    assert "--set data.max_steps=4" in msg and "min_steps (5)" in msg
    assert load_config(p, ["data.max_steps=6"]).data.max_steps == 6


def test_cross_field_sources():
    assert "data.path" in config_error(None, ["data.source=jsonl"])
    assert "data.hub_name" in config_error(None, ["data.source=hub"])


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    msg = config_error(p)
    assert "not found" in msg and str(p) in msg


def test_invalid_yaml(tmp_path):
    p = write(tmp_path, "ppo: [unclosed\n  lr: 1\n")
    msg = config_error(p)
    assert str(p) in msg and "not valid YAML" in msg


def test_top_level_list(tmp_path):
    p = write(tmp_path, "- ppo\n- data\n")
    msg = config_error(p)
    assert str(p) in msg and "mapping" in msg


def test_to_yaml_round_trip(tmp_path):
    cfg = load_config(
        None, ["ppo.lr=1e-4", "data.flaw_kinds=[dropped_step]", "logging.wandb=true", "run.name=rt", "data.path=x.jsonl"]
    )
    text = cfg.to_yaml()
    assert isinstance(yaml.safe_load(text), dict)
    again = load_config(write(tmp_path, text))
    assert again == cfg
    assert again.to_yaml() == text
    assert load_config(write(tmp_path, PvgConfig().to_yaml(), "d.yaml")) == PvgConfig()


@pytest.mark.parametrize(
    "path", CONFIGS or [pytest.param(None, marks=pytest.mark.skip(reason="no configs/*.yaml yet"))],
    ids=lambda p: p.name if p else "none",
)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert isinstance(cfg, PvgConfig)
    assert load_config(path, ["run.seed=1"]).run.seed == 1


def test_one_warmup_key_of_older_run_folders_still_loads(tmp_path):
    """Run folders written before the prover and verifier got a warm-up each keep loading (and
    resuming) with the meaning they had: one warm-up for both; a key given on its own wins."""
    old = load_config(write(tmp_path, "warmstart:\n  warmup_steps: 7\n"))
    assert (old.warmstart.prover_warmup_steps, old.warmstart.verifier_warmup_steps) == (7, 7)
    mixed = load_config(write(tmp_path, "warmstart:\n  warmup_steps: 7\n  prover_warmup_steps: 100\n", "m.yaml"))
    assert (mixed.warmstart.prover_warmup_steps, mixed.warmstart.verifier_warmup_steps) == (100, 7)
    assert "warmup_steps" not in yaml.safe_load(old.to_yaml())["warmstart"]  # written back in today's keys


def test_every_config_field_is_documented():
    """Every field of every model reachable from PvgConfig says what it means (`pvg config show --doc`)."""
    from pvg.config import config_models, undocumented

    assert {"PvgConfig", "GroupResources", "SplitConfig", "VerifierTinyConfig"} <= {m.__name__ for m in config_models()}
    missing = undocumented()
    assert not missing, "config fields with no description: " + ", ".join(missing)


def test_the_documentation_walk_looks_inside_every_annotation():
    """Models inside Optional, Union, list and dict annotations are walked too, and a blank
    description counts as none: the check above cannot miss a field by where its model sits."""
    from typing import Optional, Union

    from pydantic import BaseModel, Field

    from pvg.config import undocumented

    class InOptional(BaseModel):
        a: int = 0

    class InUnion(BaseModel):
        b: int = Field(0, description="  ")

    class InList(BaseModel):
        c: int = 0

    class InDict(BaseModel):
        d: int = Field(0, description="documented")
        e: int = 0

    class Root(BaseModel):
        opt: Optional[InOptional] = Field(None, description="x")
        union: Union[InUnion, int] = Field(0, description="x")
        items: list[InList] = Field(default_factory=list, description="x")
        table: dict[str, InDict] = Field(default_factory=dict, description="x")
        bare: int = 0

    assert sorted(undocumented(Root)) == ["InDict.e", "InList.c", "InOptional.a", "InUnion.b", "Root.bare"]


def test_describe_lists_every_leaf_with_its_value_and_description():
    from pvg.config import describe

    cfg = load_config(None, ["ppo.lr=0.25", "resources.verifier.actors=3"])
    rows = describe(cfg)

    def leaves(tree, prefix=""):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

    assert [(k, v) for k, v, _ in rows] == list(leaves(cfg.model_dump(mode="json")))
    assert all(d.strip() for _, _, d in rows)
    by_key = {k: (v, d) for k, v, d in rows}
    assert by_key["ppo.lr"] == (0.25, PvgConfig.model_fields["ppo"].annotation.model_fields["lr"].description)
    assert by_key["resources.verifier.actors"][0] == 3
    assert by_key["data.flaw_kinds"][0] == list(PvgConfig().data.flaw_kinds)
