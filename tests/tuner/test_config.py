"""Study files: the shipped ones load, and every kind of mistake gets one clear message naming its key."""

import warnings
from pathlib import Path

import pytest

from tuner.study import metrics
from tuner.study.config import check_against_data, load_config
from tuner.data.loading import DataWarning
from tuner.errors import ConfigError, DataError
from tuner.study.space import Choices, Dropped, Fixed, Range

STUDIES = Path(__file__).resolve().parents[2] / "studies"
MINIMAL = 'name = "t"\n[data]\nsource = "sklearn:wine"\n'


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_studies_load(path):
    config = load_config(path)
    assert config.name == path.stem
    assert config.metric in metrics.metrics_for_task(config.task)


def test_minimal_study_uses_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.task == "classification"
    assert config.metric == "accuracy" and config.direction == "maximize"
    assert config.budget.n_trials == 40 and config.budget.timeout is None
    assert config.sampler.name == "tpe" and config.pruner.name == "median"
    assert config.space.learning_rate == Range(low=1e-4, high=0.1, log=True)
    assert config.space.optimizer == Choices(values=("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"))


def test_regression_default_metric_minimizes(tmp_path):
    config = load_config(write(tmp_path, 'name = "d"\n[data]\nsource = "sklearn:diabetes"\n'))
    assert (config.task, config.metric, config.direction) == ("regression", "rmse", "minimize")


def test_space_entry_kinds(tmp_path):
    text = MINIMAL + (
        "[space]\nunits = 32\ndropout = false\nbatch_size = [16, 32]\nl2 = {low = 0.0, high = 0.1, step = 0.05}\n"
    )
    space = load_config(write(tmp_path, text)).space
    assert space.units == Fixed(value=32)
    assert space.dropout == Dropped()
    assert space.batch_size == Choices(values=(16, 32))
    assert space.l2 == Range(low=0.0, high=0.1, step=0.05)


def test_overrides_and_flat_settings(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    changed = config.with_overrides(n_trials=3, timeout=60, seed=7)
    assert (changed.budget.n_trials, changed.budget.timeout, changed.seed) == (3, 60, 7)
    assert changed.budget.max_epochs == config.budget.max_epochs
    assert config.budget.n_trials == 40  # the original is untouched
    with pytest.raises(ConfigError, match="budget.n_trials"):
        config.with_overrides(n_trials=0)
    flat = changed.flat_settings()
    assert flat["budget.n_trials"] == 3 and flat["direction"] == "maximize"
    assert flat["space.learning_rate"] == "range(0.0001, 0.1, log)"
    assert all(isinstance(v, str | int | float | bool) for v in flat.values())
    assert changed.model_dump()["data"]["source"] == "sklearn:wine"


def test_relative_data_path_resolves_against_study_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a,y\n1,0\n")
    (tmp_path / "studies").mkdir()
    text = 'name = "f"\n[data]\nsource = "../data/d.csv"\ntarget = "y"\ntask = "regression"\n'
    config = load_config(write(tmp_path / "studies", text))
    assert Path(config.data.source) == (tmp_path / "data" / "d.csv").resolve()


BAD = {
    "unknown_top_key": ("colour = 1\n" + MINIMAL, "colour: unknown key (allowed: name, seed, data"),
    "unknown_section_key": (
        'name = "t"\n[data]\nsource = "sklearn:wine"\nsorce = "x"\n',
        "data.sorce: unknown key (allowed: source, target, task",
    ),
    "unknown_space_key": (MINIMAL + "[space]\nlr = 0.1\n", "space.lr: unknown key (allowed: n_layers, units"),
    "low_above_high": (
        MINIMAL + "[space]\nlearning_rate = {low = 0.1, high = 0.01}\n",
        "study.toml: space.learning_rate: low (0.1) must be below high (0.01)",
    ),
    "log_range_with_zero": (
        MINIMAL + "[space]\nl2 = {low = 0.0, high = 0.1, log = true}\n",
        "space.l2: a log range needs low > 0 (got low = 0.0)",
    ),
    "log_range_negative": (
        MINIMAL + "[space]\nlearning_rate = {low = -1, high = 0.1, log = true}\n",
        "space.learning_rate: a log range needs low > 0 (got low = -1)",
    ),
    "unknown_range_key": (
        MINIMAL + "[space]\nunits = {low = 8, hi = 64}\n",
        "space.units: unknown key 'hi' in range (allowed: low, high, log, step)",
    ),
    "bad_choice": (
        MINIMAL + '[space]\nactivation = ["relu", "swish"]\n',
        "space.activation: 'swish' is not allowed (allowed: relu, tanh, sigmoid, leaky_relu, elu)",
    ),
    "range_on_categorical": (
        MINIMAL + "[space]\noptimizer = {low = 1, high = 2}\n",
        "space.optimizer: a range does not fit a categorical parameter",
    ),
    "batch_size_zero": (
        MINIMAL + "[space]\nbatch_size = [0, 32]\n",
        "space.batch_size: 0 is out of bounds (expected an integer >= 1)",
    ),
    "batch_size_fraction": (
        MINIMAL + "[space]\nbatch_size = 2.5\n",
        "space.batch_size: 2.5 is not an integer",
    ),
    "dropout_one": (
        MINIMAL + "[space]\ndropout = {low = 0.0, high = 1.0}\n",
        "space.dropout: 1.0 is out of bounds (expected a number >= 0 and < 1)",
    ),
    "robust_scaling_range": (
        MINIMAL + "[space]\nrobust_scaling = {low = 0, high = 1}\n",
        "space.robust_scaling: a range does not fit a categorical parameter; give a list of choices (true or false)",
    ),
    "robust_scaling_word": (
        MINIMAL + '[space]\nrobust_scaling = ["yes", "no"]\n',
        "space.robust_scaling: 'yes' is not allowed (expected true or false)",
    ),
    "label_smoothing_one": (
        MINIMAL + "[space]\nlabel_smoothing = [0.0, 1.0]\n",
        "space.label_smoothing: 1.0 is out of bounds (expected a number >= 0 and < 1)",
    ),
    "label_smoothing_in_regression": (
        'name = "t"\n[data]\nsource = "sklearn:diabetes"\n[space]\nlabel_smoothing = {low = 0.0, high = 0.2}\n',
        "space.label_smoothing: range(0.0, 0.2) applies to classification only; remove it or set it to false",
    ),
    "metric_unfit_for_task": (
        MINIMAL + '[objective]\nmetric = "rmse"\n',
        "objective.metric: 'rmse' does not fit a classification task (allowed: accuracy, log_loss, f1_macro, roc_auc)",
    ),
    "unknown_metric": (MINIMAL + '[objective]\nmetric = "auc"\n', "objective.metric: unknown metric 'auc' (allowed:"),
    "missing_data_file": (
        'name = "t"\n[data]\nsource = "nope.csv"\ntarget = "y"\ntask = "classification"\n',
        "data.source: file not found:",
    ),
    "data_source_is_a_directory": (
        'name = "t"\n[data]\nsource = "."\ntarget = "y"\ntask = "classification"\n',
        "is a directory; name a .csv, .tsv or .parquet file",
    ),
    "target_dropped": (
        'name = "t"\n[data]\nsource = "study.toml"\ntarget = "y"\ntask = "classification"\ndrop = ["id", "y"]\n',
        "data.drop: 'y' is the target column",
    ),
    "column_in_two_lists": (
        MINIMAL + 'categorical = ["hue"]\nnumeric = ["hue"]\n',
        "data.numeric: column 'hue' is named also in data.categorical",
    ),
    "empty_column_name": (MINIMAL + 'drop = [""]\n', "data.drop: string should have at least 1 character"),
    "unknown_sklearn_dataset": (
        'name = "t"\n[data]\nsource = "sklearn:mnist"\n',
        "data.source: unknown dataset 'sklearn:mnist' (allowed: sklearn:digits",
    ),
    "task_contradicts_dataset": (
        MINIMAL + 'task = "regression"\n',
        "data.task: sklearn:wine is a classification dataset (got task = 'regression')",
    ),
    "fractions_too_large": (
        MINIMAL + "validation_fraction = 0.5\ntest_fraction = 0.45\n",
        "data.test_fraction: validation_fraction + test_fraction must leave at least 10% for training",
    ),
    "bad_sampler": (MINIMAL + '[sampler]\nname = "bayes"\n', "sampler.name: 'bayes' is not allowed (allowed: 'tpe'"),
    "bad_pruner": (MINIMAL + '[pruner]\nname = "asha"\n', "pruner.name: 'asha' is not allowed (allowed: 'median'"),
    "option_of_other_pruner": (
        MINIMAL + '[pruner]\nname = "median"\npercentile = 10.0\n',
        "pruner.percentile: not an option of the 'median' pruner (options: n_startup_trials",
    ),
    "bad_budget": (MINIMAL + "[budget]\nn_trials = 0\n", "budget.n_trials: input should be greater than or equal to 1"),
    "missing_name": ('[data]\nsource = "sklearn:wine"\n', "study.toml: name: required key is missing"),
    "toml_syntax": ('name = "t\n', "study.toml: invalid TOML:"),
}


@pytest.mark.parametrize("text,expected", BAD.values(), ids=BAD.keys())
def test_bad_study_files_name_the_key(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    assert expected in message
    assert all(line.startswith(str(tmp_path / "study.toml") + ": ") for line in message.splitlines())


def test_several_problems_one_line_each(tmp_path):
    text = MINIMAL + "[space]\nunits = {low = 8, high = 4}\nl2 = {low = 0, high = 1, log = true}\n"
    lines = error_of(tmp_path, text).splitlines()
    assert len(lines) == 2
    assert "space.units:" in lines[0] and "space.l2:" in lines[1]


def test_file_source_needs_target(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    message = error_of(tmp_path, 'name = "t"\n[data]\nsource = "d.csv"\ntask = "classification"\n')
    assert "data.target: required for file sources" in message


INFERRED = [  # target values, inferred task, default metric, what the warning says the target holds
    (["gold", "basic", "", "gold"], "classification", "accuracy", "text"),
    (["true", "false", "true", "true"], "classification", "accuracy", "true/false values"),
    (["1", "3", "", "2"], "classification", "accuracy", "whole numbers with 3 distinct value(s) (20 or fewer are read as classes)"),
    ([str(i) for i in range(25)], "regression", "rmse", "whole numbers with 25 distinct value(s) (more than 20 are read as amounts)"),
    (["1.5", "2", "", "3.25"], "regression", "rmse", "numbers with fractions"),
]


@pytest.mark.parametrize("values,task,metric,held", INFERRED, ids=[row[3].split(" (")[0] for row in INFERRED])
def test_task_is_inferred_from_the_target_and_said(tmp_path, values, task, metric, held):
    """No data.task: the target column decides, as scikit-learn's type_of_target reads it (whole
    numbers: classes up to 20 distinct values); the metric's default and its check follow."""
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    other = "regression" if task == "classification" else "classification"
    with pytest.warns(DataWarning) as caught:
        config = load_config(write(tmp_path, 'name = "t"\n[data]\nsource = "d.csv"\ntarget = "y"\n'))
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'd.csv'}: no data.task given: the target 'y' holds {held}, so the task is {task} "
        f'(set [data] task = "{other}" to change it)'
    ]
    assert (config.task, config.metric, config.flat_settings()["task"]) == (task, metric, task)
    assert "task" not in config.file_settings()["data"]  # inferred again from the file, not stored as set
    unfit = "rmse" if task == "classification" else "accuracy"
    with pytest.warns(DataWarning):
        message = error_of(tmp_path, f'name = "t"\n[objective]\nmetric = "{unfit}"\n[data]\nsource = "d.csv"\ntarget = "y"\n')
    assert f"objective.metric: '{unfit}' does not fit a {task} task" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a task given: nothing inferred, nothing said
        given = load_config(write(tmp_path, f'name = "t"\n[data]\nsource = "d.csv"\ntarget = "y"\ntask = "{other}"\n'))
        assert given.task == other and given.with_overrides(n_trials=3).task == other
        assert load_config(write(tmp_path, MINIMAL)).task == "classification"


def test_task_inference_errors_are_one_line(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,\n2,\n")
    with pytest.raises(DataError, match=r"d.csv: target column 'y' has no values \(all 2 rows are missing\)$"):
        load_config(write(tmp_path, 'name = "t"\n[data]\nsource = "d.csv"\ntarget = "y"\n'))
    with pytest.raises(DataError, match=r"d.csv: target column 'label' not found \(columns: a, y\)$"):
        load_config(write(tmp_path, 'name = "t"\n[data]\nsource = "d.csv"\ntarget = "label"\n'))
    (tmp_path / "d.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"d.parquet: cannot read file: \w+"):
        load_config(write(tmp_path, 'name = "t"\n[data]\nsource = "d.parquet"\ntarget = "y"\n'))
    (tmp_path / "d.csv").write_text("a,y,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"d.csv: duplicate column name\(s\) 'a' \(2 times\): give each column its own"):
        load_config(write(tmp_path, 'name = "t"\n[data]\nsource = "d.csv"\ntarget = "y"\n'))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: study file not found"):
        load_config(tmp_path / "nope.toml")


def test_check_against_data(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "[space]\nbatch_size = [32, 256]\n"))
    check_against_data(config, n_train=256)
    with pytest.raises(ConfigError, match=r"space.batch_size: 256 exceed\(s\) the training set \(100 rows\)"):
        check_against_data(config, n_train=100)
    ranged = load_config(write(tmp_path, MINIMAL + "[space]\nbatch_size = {low = 8, high = 512, log = true}\n"))
    with pytest.raises(ConfigError, match="space.batch_size: 512"):
        check_against_data(ranged, n_train=300)
    auc = load_config(write(tmp_path, MINIMAL + '[objective]\nmetric = "roc_auc"\n'))
    check_against_data(auc, n_train=1000, n_classes=2)
    with pytest.raises(ConfigError, match="objective.metric: 'roc_auc' needs a binary target but this one has 3"):
        check_against_data(auc, n_train=1000, n_classes=3)


def test_metrics_registry():
    assert metrics.metrics_for_task("regression") == ["rmse", "mae", "r2"]
    assert "roc_auc" not in metrics.metrics_for_task("classification", n_classes=3)
    assert metrics.needs_proba("log_loss") and not metrics.needs_proba("accuracy")
    assert metrics.direction("r2") == "maximize" and metrics.direction("mae") == "minimize"
    assert metrics.score("accuracy", [0, 1, 1], y_pred=[0, 1, 0]) == pytest.approx(2 / 3)
    assert metrics.score("rmse", [0.0, 2.0], y_pred=[0.0, 0.0]) == pytest.approx(2**0.5)
    assert metrics.score("roc_auc", [0, 1], proba=[[0.9, 0.1], [0.2, 0.8]]) == 1.0
    # log_loss on a validation set missing class 2 still uses all three probability columns
    assert metrics.score("log_loss", [0, 1], proba=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs proba"):
        metrics.score("log_loss", [0, 1], y_pred=[0, 1])
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        metrics.direction("auc")


def test_digits_header_shows_the_defaults():
    """The header of studies/digits.toml says every `key = value` it shows is the default unless
    marked required; issue 18 found `timeout = 600` there while the default is no limit."""
    import tomllib

    import re

    from tuner.study.config import StudyConfig

    header = STUDIES.joinpath("digits.toml").read_text().split("\n\n")[0]
    # An optional table ([warm_start]) is given with its required keys, so that its others show defaults.
    required = {"name": "x", "data": {"source": "sklearn:digits"}, "warm_start": {"from": ["x"]}}
    defaults = StudyConfig.model_validate(required).model_dump()
    section, checked = None, 0
    for line in header.splitlines():
        text = line[2:] if line.startswith("# ") else ""
        if m := re.match(r"\[(\w+)\]", text):
            section = m.group(1)
        elif (m := re.match(r"(\w+)( =|\s{2,})", text)) and "required" not in text and "inferred" not in text:
            key = m.group(1)
            table = defaults if section is None else defaults[section]
            if m.group(2) == " =":
                shown = tomllib.loads(f"v = {text.split('=', 1)[1].split()[0]}")["v"]
                assert table[key] == shown, (section, key)
            else:  # a key shown without a value has no default
                assert table[key] is None, (section, key)
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a study file: it is not UTF-8 text"),
    (("a = " + "[" * 100_000 + "]" * 100_000).encode(), "invalid TOML: nested too deeply"),
], ids=["binary", "deep"])
def test_a_study_file_that_is_not_text_or_nests_too_deep_is_one_line(tmp_path, content, message):
    path = tmp_path / "s.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and "\n" not in str(info.value)
