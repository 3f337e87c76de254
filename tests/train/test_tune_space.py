"""``ferbatch tune``'s search space and trial draws (no Ray, no training)."""

from __future__ import annotations

import math
import shlex

import pytest

from ferbatch.cli_train import train_command
from ferbatch.errors import ConfigError
from ferbatch.train.args import TrainArgs
from ferbatch.train.tune import model_has_dropout, train_command_for
from ferbatch.train.tune_space import DEFAULT_SPACE, TuneOptions, draw_trials, search_space, train_args_for


def _trials(**kw) -> list[dict]:
    options = TuneOptions(data="d.csv", out="o", **kw)
    return draw_trials(options, search_space(options, model_has_dropout(options.model)))


def test_default_random_trials_differ() -> None:
    """`--search random --samples 8` with no dimension given: 8 different trials."""
    trials = _trials(search="random", samples=8)
    assert len(trials) == 8
    assert set(trials[0]) == {"lr", "batch_size", "dropout", "weight_decay", "augment"}
    assert len({tuple(sorted(t.items())) for t in trials}) == 8
    for name in ("lr", "weight_decay", "dropout"):  # continuous: all distinct
        assert len({t[name] for t in trials}) == 8, name
    for t in trials:
        assert 0.005 <= t["lr"] <= 0.2 and 1e-5 <= t["weight_decay"] <= 1e-3
        assert 0.0 <= t["dropout"] <= 0.5
        assert t["batch_size"] in (64, 128, 256)
        assert t["augment"] in ("light", "standard", "strong")
    # log-uniform: both decades of the lr range are visited over many draws
    many = _trials(search="random", samples=200)
    assert min(t["lr"] for t in many) < 0.02 and max(t["lr"] for t in many) > 0.05
    assert len({t["augment"] for t in many}) == 3 and len({t["batch_size"] for t in many}) == 3
    # seeded
    assert _trials(search="random", samples=8) == trials
    assert _trials(search="random", samples=8, seed=1) != trials


def test_random_space_follows_model_optimizer_and_set() -> None:
    assert not model_has_dropout("tv_resnet18") and model_has_dropout("vgg_gap")
    no_dropout = _trials(search="random", samples=3, model="tv_resnet18")
    assert all("dropout" not in t for t in no_dropout)
    adamw = _trials(search="random", samples=20, base={"optimizer": "adamw"})
    assert all(1e-4 <= t["lr"] <= 3e-3 for t in adamw)
    fixed = _trials(search="random", samples=3, base={"lr": 0.01}, augment="strong")
    assert all("lr" not in t and t["augment"] == "strong" for t in fixed)
    ranged = _trials(search="random", samples=10, batch_size="32:256", dropout="0.1:0.2")
    assert all(32 <= t["batch_size"] <= 256 and isinstance(t["batch_size"], int) for t in ranged)
    assert all(0.1 <= t["dropout"] <= 0.2 for t in ranged)
    with pytest.raises(ConfigError, match="no dropout option"):
        _trials(search="random", model="tv_resnet18", dropout="0.1,0.2")


def test_grid() -> None:
    assert _trials() == [{}]  # nothing listed: one trial at the train defaults
    grid = _trials(lr="0.01,0.05", augment="light,strong", samples=2)
    assert len(grid) == 8 and grid[:4] == [
        {"lr": 0.01, "augment": "light"}, {"lr": 0.01, "augment": "strong"},
        {"lr": 0.05, "augment": "light"}, {"lr": 0.05, "augment": "strong"}]
    with pytest.raises(ConfigError, match="ranges need --search random"):
        _trials(lr="1e-3:1e-1")
    with pytest.raises(ConfigError, match="augmentation preset"):
        _trials(augment="light,wild")
    with pytest.raises(ConfigError, match="lo < hi"):
        _trials(search="random", lr="0.1:0.01")


def test_trial_args_and_retrain_command() -> None:
    options = TuneOptions(data="fer.csv", out="runs/tune", model_kwargs={"width": 4},
                          base={"input_size": 36, "amp": False}, epochs=3)
    config = {"lr": 0.0123, "batch_size": 64, "dropout": 0.25, "weight_decay": 1e-4,
              "augment": "strong"}
    args = train_args_for(options, config)
    assert (args.lr, args.batch_size, args.augment, args.input_size, args.amp) == (
        0.0123, 64, "strong", 36, False)
    assert args.model_kwargs == {"width": 4, "dropout": 0.25} and args.epochs == 3
    assert TrainArgs.__dataclass_fields__["lr"].default != args.lr
    # the printed command parses back, through the real CLI, into the same TrainArgs
    command = train_command_for(options, {**config, "best_val_acc": 0.5})
    parts = shlex.split(command)
    assert parts[:2] == ["ferbatch", "train"]
    ctx = train_command.make_context("train", parts[2:])
    from ferbatch.cli_train import train_args

    parsed = train_args(ctx.params)
    expected = {**args.to_dict(), "out": "runs/tune/best_config", "quiet": False}
    assert parsed.to_dict() == expected
    with pytest.raises(ConfigError, match="unknown training option"):
        train_args_for(TuneOptions(data="d", out="o", base={"lrate": 1}), {})


def test_draws_are_finite_numbers() -> None:
    for t in _trials(search="random", samples=30):
        assert all(math.isfinite(t[k]) for k in ("lr", "weight_decay", "dropout"))
    assert set(DEFAULT_SPACE) == {"lr", "batch_size", "dropout", "weight_decay", "augment"}
