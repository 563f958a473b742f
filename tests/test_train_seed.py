"""`sgg train`: one seed per run, named by --seed_everything, --model.seed or --data.seed (sgg.cli.run_seed)."""

import pytest
import yaml

from sgg.cli import main, run_seed
from sgg.cli_support import UsageError


def _cfg(tmp_path, name="c.yaml", **sections):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(sections))
    return str(path)


def test_run_seed_rules(tmp_path):
    assert run_seed(["--model.seed", "3", "--trainer.max_epochs=1"]) == (["--trainer.max_epochs=1",
                                                                          "--seed_everything=3"], 3)
    assert run_seed(["--data.seed=4"])[1] == 4 and run_seed(["--seed_everything", "5"])[1] == 5
    assert run_seed(["--seed_everything", "7", "--data.seed", "7", "--model.seed=7"]) == (["--seed_everything=7"], 7)
    assert run_seed([]) == (["--seed_everything=0"], 0)  # nothing given: 0, as the shipped configs say
    # true: a seed drawn from the OS (Lightning alone would fall back to 0), an integer the run records
    drawn = {run_seed(["--seed_everything", "true"])[1] for _ in range(4)}
    assert all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in drawn) and len(drawn) > 1
    args, seed = run_seed(["--model.seed=true"])
    assert args == [f"--seed_everything={seed}"]
    with pytest.raises(UsageError, match="one seed.*--model.seed 3, --data.seed 4"):
        run_seed(["--model.seed", "3", "--data.seed", "4"])
    with pytest.raises(UsageError, match="integer"):
        run_seed(["--model.seed", "x"])
    # configs: a model/data seed wins over seed_everything; a later file over an earlier one; command line over all
    a = _cfg(tmp_path, "a.yaml", seed_everything=0, data={"seed": 3})
    b = _cfg(tmp_path, "b.yaml", model={"init_args": {"seed": 3}})
    c = _cfg(tmp_path, "c.yaml", seed_everything=9)
    assert run_seed(["--config", a])[1] == 3 and run_seed(["--config", a, "--config", b])[1] == 3
    assert run_seed([f"--config={c}"])[1] == 9 and run_seed(["--config", a, "--seed_everything", "5"])[1] == 5
    with pytest.raises(UsageError, match="model.seed 8"):
        run_seed(["--config", a, "--config", _cfg(tmp_path, "d.yaml", model={"seed": 8})])


@pytest.fixture(scope="module")
def rel_data(tmp_path_factory):
    from sgg.datasets import synthetic

    root = tmp_path_factory.mktemp("rel")
    synthetic.generate_dataset(root / "data", scenes=3, size=384, seed=0, split=(0.34, 0.33, 0.33))
    return root


def _train(root, *extra):
    cfg = _cfg(root, "freq.yaml", seed_everything=0,
               trainer={"accelerator": "cpu", "max_epochs": 1, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                        "enable_progress_bar": False, "enable_checkpointing": False, "logger": False,
                        "default_root_dir": str(root / "runs")},
               model={"head": "freq"}, data={"data_dir": str(root / "data"), "batch_size": 1, "neg_ratio": -1,
                                             "shuffle": False, "seed": 1})
    rc = main(["train", "relation", "--config", cfg, *extra])
    saved = yaml.safe_load((root / "runs" / "config.yaml").read_text()) if rc == 0 else None
    return rc, saved


def test_train_relation_takes_model_seed(rel_data):
    rc, saved = _train(rel_data, "--model.seed", "3")  # refused before: 'Linked "model.seed" must be given via "data.seed"'
    assert rc == 0 and (saved["seed_everything"], saved["model"]["seed"], saved["data"]["seed"]) == (3, 3, 3)


def test_train_refuses_two_seeds(rel_data, capsys):
    assert _train(rel_data, "--model.seed", "3", "--seed_everything", "4")[0] == 2
    assert "a run has one seed" in capsys.readouterr().err
