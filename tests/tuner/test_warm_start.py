"""Issue 14, warm start: a new study's first trials are the best trials of earlier studies
(tuner/search/warm_start.py), filtered to its space, enqueued once, linked from its parent run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.helpers import assert_no_failed_trials, invoke
from tuner import runner
from tuner.search import warm_start
from tuner.study.config import StudyConfig, load_config
from tuner.errors import ConfigError, TunerError
from tuner.search.constraints import ranked_trials
from tuner.study.space import defaults_trial, suggest_params

REPO = Path(__file__).resolve().parents[2]
SPACE = {
    "n_layers": {"low": 1, "high": 2}, "units": {"low": 8, "high": 32, "log": True}, "batch_size": [16, 32],
    "learning_rate": {"low": 1e-3, "high": 0.1, "log": True},
}
BASE = {
    "data": {"source": "sklearn:iris"}, "objective": {"validation_splits": 1},
    "budget": {"n_trials": 6, "max_epochs": 3}, "pruner": {"name": "none"},
    "result": {"ensemble": 1, "refit": False, "seeds": 1}, "space": SPACE,
}

# The source study is shared by the module's tests: one test worker.
pytestmark = pytest.mark.xdist_group("warm_start")


def _config(name: str, **sections) -> StudyConfig:
    return StudyConfig.model_validate(BASE | {"name": name} | sections)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A storage holding study ``src`` (6 trials, no defaults trial: so that its best trials are
    its own draws), and an MLflow store."""
    folder = tmp_path_factory.mktemp("warm")
    storage, tracking = f"sqlite:///{folder}/o.db", f"sqlite:///{folder}/m.db"
    source = _config("src", result=BASE["result"] | {"start_from_defaults": False})
    assert_no_failed_trials(runner.run_study(source, storage=storage, tracking_uri=tracking).study)
    return storage, tracking


def _warm(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if warm_start.TRIAL_ATTR in t.user_attrs]


def test_a_new_study_runs_the_sources_best_trials_first_and_resuming_does_not_enqueue_again(stores):
    import mlflow

    storage, tracking = stores
    config = _config("dst", budget={"n_trials": 5, "max_epochs": 3}, warm_start={"from": ["src"], "count": 3})
    lines: list[str] = []
    study = runner.run_study(config, storage=storage, tracking_uri=tracking, notify=lines.append).study
    assert_no_failed_trials(study)
    source = optuna.load_study(study_name="src", storage=storage)
    best = ranked_trials(source)[:3]
    assert len(best) == 3 and best[0].value >= best[-1].value
    # Trial 0 is the defaults trial, then the source's three best, best first, then the sampler's.
    assert study.trials[0].params == defaults_trial(config.space)
    assert [t.params for t in study.trials[1:4]] == [t.params for t in best]
    assert [t.user_attrs[warm_start.TRIAL_ATTR] for t in study.trials[1:4]] == [f"src#{t.number}" for t in best]
    assert warm_start.TRIAL_ATTR not in study.trials[4].user_attrs
    assert lines == [f"warm start from study 'src' ({storage}): 3 of its 3 best trials enqueued"]
    assert study.user_attrs[warm_start.WARM_START_ATTR] == [
        {"study": "src", "storage": storage, "enqueued": 3, "skipped": 0}
    ]

    # The parent run names the source and its storage, and how many trials were enqueued.
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("dst")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`tuner.role` = 'parent'")
    assert parent.data.tags[warm_start.TAG_FROM] == f"src ({storage}): 3 enqueued, 0 skipped"
    assert parent.data.tags[warm_start.TAG_ENQUEUED] == "3"

    # Resumed with a larger budget: no trial is enqueued again, the new trials are sampled.
    lines.clear()
    resumed = runner.run_study(config, storage=storage, tracking_uri=tracking, n_trials=7, notify=lines.append).study
    assert_no_failed_trials(resumed)
    assert len(resumed.trials) == 7 and len(_warm(resumed)) == 3 and lines == []


def _hand_made_source(storage: str) -> optuna.Study:
    """Study ``hand`` with three completed trials of known values (no training)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    study = optuna.create_study(study_name="hand", storage=storage, direction="maximize")
    distributions = {
        "n_layers": IntDistribution(1, 3), "units_l0": IntDistribution(8, 64, log=True), "units_l1": IntDistribution(8, 64, log=True),
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True), "activation": CategoricalDistribution(["relu", "tanh"]),
    }
    for value, params in [
        (0.9, {"n_layers": 1, "units_l0": 16, "learning_rate": 0.5, "activation": "tanh"}),  # lr outside
        (0.8, {"n_layers": 2, "units_l0": 16, "units_l1": 24, "learning_rate": 0.01, "activation": "tanh"}),
        (0.7, {"n_layers": 3, "units_l0": 8, "units_l1": 8, "units_l2": 8, "learning_rate": 0.01, "activation": "relu"}),
        (0.1, {"n_layers": 1, "units_l0": 32, "learning_rate": 0.02, "activation": "relu"}),  # not among the best 3
    ]:
        used = {k: d for k, d in distributions.items() if k in params} | (
            {"units_l2": IntDistribution(8, 64, log=True)} if "units_l2" in params else {}
        )
        study.add_trial(optuna.trial.create_trial(params=params, distributions=used, value=value))
    return study


def test_source_values_outside_the_space_skip_the_trial_and_parameters_it_does_not_draw_are_dropped(tmp_path):
    storage = f"sqlite:///{tmp_path}/o.db"
    _hand_made_source(storage)
    # The current space: learning rates up to 0.1, at most 2 layers, the activation fixed.
    config = _config(
        "narrow", space=SPACE | {"activation": "relu"}, warm_start={"from": ["hand"], "count": 3},
        result=BASE["result"] | {"start_from_defaults": False},
    )
    lines: list[str] = []
    study = runner.create_study(config, storage, notify=lines.append)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    # Of the 3 best, trial 0 (learning_rate 0.5) and trial 2 (3 layers) are skipped; trial 1 is
    # enqueued without its activation, which this space fixes.
    assert [t.user_attrs[warm_start.TRIAL_ATTR] for t in waiting] == ["hand#1"]
    assert waiting[0].system_attrs["fixed_params"] == {"n_layers": 2, "units_l0": 16, "units_l1": 24, "learning_rate": 0.01}
    (line,) = lines
    assert line.startswith(f"warm start from study 'hand' ({storage}): 1 of its 3 best trials enqueued, 2 skipped (")
    assert "trial 0: learning_rate 0.5 is out of bounds (expected a number >= 0.001 and <= 0.1)" in line
    assert "trial 2: n_layers 3 is out of bounds (expected an integer >= 1 and <= 2)" in line
    assert line.endswith("; parameters this space does not draw, dropped: activation")
    # The enqueued trial runs with the source's values; the sampler draws the others.
    study.optimize(lambda trial: len(suggest_params(trial, config.space, 3)["hidden_layer_sizes"]), n_trials=1)
    ran = study.trials[0].params
    assert {k: ran[k] for k in ("n_layers", "units_l0", "units_l1", "learning_rate")} == waiting[0].system_attrs["fixed_params"]
    assert {"batch_size", "optimizer", "dropout"} <= set(ran) and "activation" not in ran


def test_a_missing_source_is_one_error_line_through_the_command_and_no_study_is_created(tmp_path):
    storage = f"sqlite:///{tmp_path}/o.db"
    _hand_made_source(storage)
    study_file = tmp_path / "w.toml"
    study_file.write_text(
        'name = "w"\n[data]\nsource = "sklearn:iris"\n[budget]\nn_trials = 2\nmax_epochs = 2\n'
        '[warm_start]\nfrom = ["hand", "nope"]\n'
    )

    def run():
        return invoke("run", str(study_file), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path}/m.db")

    proc = run()
    assert proc.exit_code == 1, proc.output[-3000:]
    # (MLflow's notices of creating its fresh store may come before it.)
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"error: {study_file}: warm_start.from: no study named 'nope' in {storage} (studies there: hand)"
    ], proc.stderr[-3000:]
    assert optuna.study.get_all_study_names(storage=storage) == ["hand"]

    # With sources that exist, the command tells the user what it enqueued, one line per source.
    study_file.write_text(study_file.read_text().replace('"hand", "nope"', '"hand"') + (
        '[objective]\nvalidation_splits = 1\n[result]\nensemble = 1\nrefit = false\nseeds = 1\n'
    ))
    proc = run()
    assert proc.exit_code == 0, proc.output[-3000:]
    assert (
        f"warm start from study 'hand' ({storage}): 1 of its 4 best trials enqueued (only 4 of the 5 asked for: "
        "it has no more completed trials that count), 3 skipped (trial 0: learning_rate 0.5 is out of bounds "
        "(expected a number >= 0.0001 and <= 0.1); trial 2: units_l0 8 is out of bounds (expected an integer >= 16 "
        "and <= 256); trial 3: over the study's 2 trials)\n"
    ) in proc.stdout, proc.stdout[-3000:]
    assert [t.user_attrs.get(warm_start.TRIAL_ATTR) for t in optuna.load_study(study_name="w", storage=storage).trials] == [
        None, "hand#1"
    ]


def test_a_source_storage_that_cannot_be_opened_is_named_without_its_password(tmp_path):
    config = _config("p", warm_start={"from": ["a"], "storage": "postgresql+psycopg://user:secret@127.0.0.1:1/db"})
    with pytest.raises(TunerError) as err:
        runner.create_study(config, f"sqlite:///{tmp_path}/o.db")
    message = str(err.value)
    assert message.startswith("<study>: warm_start.storage: cannot open the study storage "
                              "postgresql+psycopg://user:***@127.0.0.1:1/db: ")
    assert "secret" not in message and "\n" not in message
    assert optuna.study.get_all_study_names(storage=f"sqlite:///{tmp_path}/o.db") == []


def test_the_warm_start_skips_the_defaults_trial_and_stops_at_the_budget(tmp_path):
    """A source trial equal to the defaults trial is not queued twice; trials beyond the study's
    budget are not queued (they would wait for ever)."""
    storage = f"sqlite:///{tmp_path}/o.db"
    config = _config("cap", budget={"n_trials": 2, "max_epochs": 3}, warm_start={"from": ["hand"], "count": 5},
                     space=SPACE | {"activation": "relu"})
    hand = _hand_made_source(storage)
    hand.enqueue_trial({})  # trial 4, not completed: never a source
    defaults = defaults_trial(config.space)
    hand.add_trial(optuna.trial.create_trial(params=defaults, distributions=_distributions(config, defaults), value=0.95))
    lines: list[str] = []
    study = runner.create_study(config, storage, notify=lines.append)
    # The defaults trial, then of the 5 best (trials 5, 0, 1, 2, 3) only trial 1.
    assert [t.user_attrs.get(warm_start.TRIAL_ATTR) for t in study.trials] == [None, "hand#1"]
    assert study.trials[0].system_attrs["fixed_params"] == defaults
    (line,) = lines
    assert "1 of its 5 best trials enqueued, 4 skipped (trial 0: learning_rate 0.5 is out of bounds" in line
    assert "; trial 2: n_layers 3 is out of bounds" in line
    assert "; trial 5: the same as a trial queued before it; and 1 more)" in line  # trial 3: over the budget
    assert study.user_attrs[warm_start.WARM_START_ATTR][0]["skipped"] == 4


def _distributions(config: StudyConfig, params: dict) -> dict:
    """The distributions ``config``'s space draws ``params`` from (a trial run on them)."""
    from optuna.trial import FixedTrial

    trial = FixedTrial(params)
    suggest_params(trial, config.space, 3)
    return trial.distributions


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "warm_start.from: required key is missing"),
        ({"from": []}, "warm_start.from: list should have at least 1 item"),
        ({"from": ["a", "a"]}, "warm_start.from: names 'a' more than once"),
        ({"from": ["a"], "count": 0}, "warm_start.count: input should be greater than or equal to 1"),
        ({"from": ["a"], "count": 101}, "warm_start.count: input should be less than or equal to 100"),
        ({"from": ["a"], "cout": 3}, "warm_start.cout: unknown key (allowed: from, count, storage)"),
    ],
)
def test_the_warm_start_table_is_checked(table, message):
    import re

    from tuner.study.config import config_from_settings

    with pytest.raises(ConfigError, match="^" + re.escape(f"s.toml: {message}")):
        config_from_settings({"name": "s", "data": {"source": "sklearn:iris"}, "warm_start": table}, "s.toml")


def test_the_warm_start_is_read_from_a_study_file_and_kept_with_the_study(tmp_path):
    from tuner.study.config import config_from_settings

    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[data]\nsource = "sklearn:iris"\n[warm_start]\nfrom = ["a", "b"]\ncount = 2\n')
    config = load_config(path)
    assert (config.warm_start.from_, config.warm_start.count, config.warm_start.storage) == (["a", "b"], 2, None)
    assert config_from_settings(config.file_settings(), "stored").warm_start == config.warm_start
    assert config.with_overrides(n_trials=3).warm_start == config.warm_start
    with pytest.raises(ConfigError, match="^stored: warm_start: the grid sampler"):
        config_from_settings({"name": "g", "data": {"source": "sklearn:iris"}, "sampler": {"name": "grid"},
                              "warm_start": {"from": ["a"]}}, "stored")


RACE = """
import json, sys
from tuner import runner
from tuner.study.config import StudyConfig
from tuner.storage.storages import open_storage

config, url = StudyConfig.model_validate(json.loads(sys.argv[1])), sys.argv[2]
storage = open_storage(url)
print("ready", flush=True)
sys.stdin.readline()
runner.create_study(config, storage, sys.argv[3], storage_url=url)
"""


def test_workers_creating_the_study_together_enqueue_the_warm_start_once(tmp_path):
    """Two processes create the new study at the same instant (``tuner worker`` started twice):
    the warm trials are enqueued once, under the study's budget lock."""
    import json

    from tests.helpers import released_together

    storage = f"sqlite:///{tmp_path}/o.db"
    _hand_made_source(storage)
    raw = BASE | {"name": "race", "warm_start": {"from": ["hand"], "count": 3},
                  "space": SPACE | {"n_layers": {"low": 1, "high": 3}, "learning_rate": {"low": 1e-3, "high": 1.0, "log": True}}}
    released_together(RACE, [[json.dumps(raw), storage, f"w{i}"] for i in range(2)], cwd=REPO)
    study = optuna.load_study(study_name="race", storage=storage)
    assert sorted(t.user_attrs[warm_start.TRIAL_ATTR] for t in _warm(study)) == ["hand#0", "hand#1", "hand#2"]
    assert study.user_attrs[warm_start.WARM_START_ATTR][0]["enqueued"] == 3


def test_an_existing_study_is_not_warm_started_and_the_user_is_told(tmp_path):
    storage = f"sqlite:///{tmp_path}/o.db"
    _hand_made_source(storage)
    runner.create_study(_config("old"), storage).optimize(lambda trial: 0.5, n_trials=1)
    lines: list[str] = []
    study = runner.create_study(_config("old", warm_start={"from": ["hand"]}), storage, notify=lines.append)
    assert _warm(study) == [] and warm_start.WARM_START_ATTR not in study.user_attrs
    assert lines == [
        "warm start: study 'old' already has trials, and [warm_start] applies only when a study is created: give "
        "the study a new name to start it from the sources' best trials"
    ]


def test_a_multi_objective_source_gives_its_pareto_front_and_a_small_one_says_so(tmp_path):
    from optuna.distributions import FloatDistribution

    source = optuna.create_study(directions=["maximize", "minimize"])
    lr = {"learning_rate": FloatDistribution(1e-4, 1.0, log=True)}
    for values, rate in [((0.9, 5.0), 0.01), ((0.5, 9.0), 0.02), ((0.8, 1.0), 0.03)]:  # the second is dominated
        source.add_trial(optuna.trial.create_trial(params={"learning_rate": rate}, distributions=lr, values=values))
    assert [t.number for t in warm_start.best_trials(source, 5)] == [0, 2]
    found = warm_start.candidates(source, 5, _config("m").space, 3, "memory")
    assert [(params, origin) for params, origin in found.trials] == [
        ({"learning_rate": 0.01}, f"{source.study_name}#0"), ({"learning_rate": 0.03}, f"{source.study_name}#2"),
    ]
    assert warm_start._line(found, 2, [], 5).endswith(
        ": 2 of its 2 best trials enqueued (only 2 of the 5 asked for: it has no more completed trials that count)"
    )
