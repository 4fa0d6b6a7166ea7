"""Every run's record is trustworthy and every bad input a clear error: a model dir or results
file of another run is never silently resumed or replaced, bad values stop a run before it
writes anything, files are readable by other users, and recorded commands rerun from the
repository root."""

import json
import os
import shlex
import shutil
import stat
import subprocess

import pytest

from tfsp import config as config_lib
from tfsp import results

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def tiny_config(arff, xml, method="feedforward", **overrides):
    return config_lib.resolve("mlc", method, config_lib.deep_update(
        {"data": {"arff": str(arff), "xml": str(xml)}, "epochs": 1}, overrides))


def snapshot(folder):
    """{relative path: (bytes, mtime)} of every file under folder."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----- item 2: nothing mislabelled, nothing lost ------------------------------------------------
def test_rerun_into_a_model_dir_with_other_settings_is_refused(tiny_mulan, tmp_path):
    from tfsp import experiment

    arff, xml = tiny_mulan
    run_dir = tmp_path / "run"
    experiment.run(tiny_config(arff, xml), str(run_dir), None, verbose=0)
    before = snapshot(run_dir)

    other = tiny_config(arff, xml, seed=1, optimizer={"learning_rate": 0.01}, crop_mode="joint")
    with pytest.raises(config_lib.ConfigError) as error:
        experiment.run(other, str(run_dir), None, verbose=0)
    message = str(error.value)
    for expected in ("seed: 0 in config.json, 1 now", "optimizer.learning_rate: 0.001 in config.json, 0.01 now",
                     "crop_mode", "Use the stored configuration", "--set seed=0", "another --model_dir"):
        assert expected in message, message
    assert snapshot(run_dir) == before, "a refused run wrote into the model dir"

    # Evaluating the weights with other training settings would mislabel them too; with other
    # test-time settings is what --mode=evaluate is for.
    with pytest.raises(config_lib.ConfigError, match="seed: 0 in config.json, 1 now"):
        experiment.evaluate_saved(tiny_config(arff, xml, seed=1), str(run_dir))
    experiment.evaluate_saved(tiny_config(arff, xml, crop_mode="joint"), str(run_dir))

    # Allowed on resume: the data moved, the evaluation batch size, post-training settings, more epochs.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(arff, moved / arff.name)
    shutil.copy(xml, moved / xml.name)
    extended = tiny_config(moved / arff.name, moved / xml.name, epochs=2, select_refine_steps=True,
                           compare_crop_modes=False, data={"eval_batch_size": 64})
    record = experiment.run(extended, str(run_dir), None, verbose=0)
    assert record["initial_epoch"] == 1 and record["epochs_run"] == 1
    assert json.loads((run_dir / "config.json").read_text())["data"]["arff"] == str(moved / arff.name)

    # Fewer epochs than are done would record 1 epoch for weights trained 2.
    with pytest.raises(config_lib.ConfigError, match="2 finished epochs.*--epochs=2"):
        experiment.run(tiny_config(arff, xml), str(run_dir), None, verbose=0)


def test_test_crop_grid_may_change_in_evaluation_but_not_on_resume(tmp_path):
    # How many crops cover a test image is a test-time setting (DVN's Table 4 scores one trained
    # value net with 9, 25 and 36 crops); a resumed run keeps the grid its validations used.
    from tfsp import experiment

    trained = config_lib.resolve("horses", "dvn")
    (tmp_path / "config.json").write_text(json.dumps(config_lib.as_dict(trained)))
    nine_crops = config_lib.resolve("horses", "dvn", {"data": {"crop_grid": 3}})
    experiment.check_model_dir_config(nine_crops, tmp_path, experiment.EVALUATE_MAY_CHANGE)
    # Choosing the crop mode on validation happens after training, like choosing the step count.
    chosen_mode = config_lib.resolve("horses", "dvn", {"select_crop_mode": True})
    experiment.check_model_dir_config(chosen_mode, tmp_path, experiment.RESUME_MAY_CHANGE)
    with pytest.raises(config_lib.ConfigError, match="data.crop_grid: 6 in config.json, 3 now"):
        experiment.check_model_dir_config(nine_crops, tmp_path, experiment.RESUME_MAY_CHANGE)


def test_early_stopping_ends_the_run_and_a_rerun_keeps_it_stopped(tiny_mulan, tmp_path):
    # A learning rate of 1e-9 leaves the validation F1 where the first epoch put it, so no later
    # validation improves on it: with a patience of 2 validations the run stops after epoch 3.
    from tfsp import experiment

    arff, xml = tiny_mulan
    config = tiny_config(arff, xml, epochs=8, early_stopping_validations=2, optimizer={"learning_rate": 1e-9})
    record = experiment.run(config, str(tmp_path / "run"), None, verbose=0)
    assert (record["best_epoch"], record["epochs_run"], record["early_stopped_at_epoch"]) == (1, 3, 3)
    assert len(record["history"]["loss"]) == 3
    again = experiment.run(config, str(tmp_path / "run"), None, verbose=0)  # resumes, trains nothing
    assert (again["initial_epoch"], again["epochs_run"], again["early_stopped_at_epoch"]) == (3, 0, 3)
    assert again["metrics"] == record["metrics"]

    budget = experiment.run(tiny_config(arff, xml, epochs=2, early_stopping_validations=5),
                            str(tmp_path / "budget"), None, verbose=0)
    assert budget["epochs_run"] == 2 and budget["early_stopped_at_epoch"] is None
    with pytest.raises(config_lib.ConfigError, match="exclude each other"):
        experiment.run(tiny_config(arff, xml, early_stopping_validations=2, final_epochs_on_all_training_data=1),
                       str(tmp_path / "final"), None, verbose=0)


def test_threshold_chosen_on_validation_is_the_one_the_test_pass_and_a_reevaluation_use(tiny_mulan, tmp_path):
    from tfsp import evaluation, experiment

    arff, xml = tiny_mulan
    record = experiment.run(tiny_config(arff, xml, epochs=2, select_threshold=True), str(tmp_path / "run"),
                            None, verbose=0)
    chosen = record["threshold_selected"]
    assert chosen["configured"] == 0.5 and chosen["chosen"] in evaluation.THRESHOLDS
    scores = chosen["validation"]
    assert len(scores) == 19 and scores[f"{chosen['chosen']:.2f}"] == max(scores.values())
    # The same weights re-tested at that threshold give the recorded test metrics; at another
    # threshold, other ones (a threshold of 0.95 predicts almost no label).
    again = experiment.evaluate_saved(tiny_config(arff, xml, epochs=2, prediction_threshold=chosen["chosen"], select_threshold=False),
                                      str(tmp_path / "run"))
    assert again["metrics"] == pytest.approx(record["metrics"])
    high = experiment.evaluate_saved(tiny_config(arff, xml, epochs=2, prediction_threshold=0.95, select_threshold=False),
                                     str(tmp_path / "run"))
    assert high["metrics"]["example_f1"] < record["metrics"]["example_f1"]


def test_model_dir_without_trained_weights_takes_new_settings(tiny_mulan, tmp_path):
    from tfsp import experiment

    arff, xml = tiny_mulan
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # a run that stopped before its first epoch: nothing trained with its settings
    (run_dir / "config.json").write_text(json.dumps(tiny_config(arff, xml, seed=5).to_dict()))
    experiment.run(tiny_config(arff, xml), str(run_dir), None, verbose=0)
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 0


def test_checkpoint_mismatch_writes_nothing(tiny_mulan, tmp_path):
    from tfsp import experiment

    arff, xml = tiny_mulan
    run_dir = tmp_path / "run"
    experiment.run(tiny_config(arff, xml), str(run_dir), None, verbose=0)
    # As if an older tfsp had written this checkpoint for the configuration now stored: the
    # configurations agree (up to a setting a rewrite would show) but the variables do not.
    ldrsp = tiny_config(arff, xml, method="ldrsp", compare_crop_modes=False)
    (run_dir / "config.json").write_text(json.dumps(ldrsp.to_dict()))
    before = snapshot(run_dir)
    with pytest.raises(experiment.CheckpointMismatch, match="ckpt-1: this checkpoint does not match"):
        experiment.run(tiny_config(arff, xml, method="ldrsp"), str(run_dir), None, verbose=0)
    assert snapshot(run_dir) == before


def test_results_names_distinguish_seeds():
    from tfsp.launch import results_name

    ldrsp = config_lib.resolve("mlc", "ldrsp")
    assert results_name(ldrsp) == "mlc-ldrsp"  # seed 0 as in the committed results/*.json
    ldrsp.seed = 1
    assert results_name(ldrsp) == "mlc-ldrsp-seed1"
    assert results_name(ldrsp, "-seed1") == "mlc-ldrsp-seed1"  # the committed scripts' suffix
    assert results_name(ldrsp, "-seed12") == "mlc-ldrsp-seed1-seed12"
    assert results_name(ldrsp, "-lr3e-4") == "mlc-ldrsp-seed1-lr3e-4"
    implicit = config_lib.resolve("mlc", "implicit", {"seed": 2})
    assert results_name(implicit) == "mlc-implicit-cd-seed2"


def test_results_of_another_run_are_not_replaced(tiny_mulan, tmp_path):
    from tfsp import experiment

    arff, xml = tiny_mulan
    path = tmp_path / "mlc-feedforward.json"
    run_dir = tmp_path / "run"
    experiment.run(tiny_config(arff, xml), str(run_dir), str(path), verbose=0)

    # Another seed: refused before training (its model dir is not even made).
    with pytest.raises(config_lib.ConfigError,
                       match=r"another run \(seed: 0 in it, 1 now\).*--overwrite_results"):
        experiment.run(tiny_config(arff, xml, seed=1), str(tmp_path / "seed1"), str(path), verbose=0)
    assert not (tmp_path / "seed1").exists()
    assert json.loads(path.read_text())["seed"] == 0
    with pytest.raises(config_lib.ConfigError, match="crop_mode"):
        experiment.evaluate_saved(tiny_config(arff, xml, crop_mode="joint"), str(run_dir), str(path))

    # The same run again, and the same model dir resumed with more epochs: its own record, replaced.
    experiment.run(tiny_config(arff, xml), str(run_dir), str(path), verbose=0)
    assert json.loads(path.read_text())["initial_epoch"] == 1
    experiment.run(tiny_config(arff, xml, epochs=2), str(run_dir), str(path), verbose=0)
    assert json.loads(path.read_text())["config"]["epochs"] == 2
    # More epochs in another model dir is another run.
    with pytest.raises(config_lib.ConfigError, match="epochs: 2 in it, 3 now"):
        experiment.run(tiny_config(arff, xml, epochs=3), str(tmp_path / "other"), str(path), verbose=0)

    experiment.run(tiny_config(arff, xml, seed=1), str(tmp_path / "seed1"), str(path), verbose=0,
                   overwrite_results=True)
    assert json.loads(path.read_text())["seed"] == 1

    benchmark = tmp_path / "benchmark.json"
    benchmark.write_text('{"benchmark": "not a run"}')
    with pytest.raises(config_lib.ConfigError, match="holds no run configuration"):
        results.check_replaceable(benchmark, tiny_config(arff, xml))


@pytest.mark.parametrize("overrides,named", [
    ({"epochs": -3}, "epochs=-3 (must be >= 1)"),
    ({"epochs": 0}, "epochs=0 (must be >= 1)"),
    ({"test_refine": {"steps": -1}}, "test_refine.steps=-1 (must be >= 0)"),
    ({"train_refine": {"step_size": 0}}, "train_refine.step_size=0.0 (must be > 0)"),
    ({"adversarial": {"step_size": -0.5}}, "adversarial.step_size=-0.5 (must be > 0)"),
    ({"data": {"batch_size": 0}}, "data.batch_size=0 (must be >= 1)"),
    ({"data": {"validation_fraction": 1}}, "data.validation_fraction=1.0 (must be in [0, 1))"),
    ({"data": {"train_fraction": 0}}, "data.train_fraction=0.0 (must be in (0, 1))"),
    ({"g_optimizer": {"learning_rate": 0}}, "g_optimizer.learning_rate=0.0 (must be > 0)"),
    ({"inference_net": {"dropout": 1}}, "inference_net.dropout=1.0 (must be in [0, 1))"),
    ({"value_net": {"hidden": [150, 0]}}, "value_net.hidden=[150, 0] (must be all >= 1)"),
    ({"extra_sample_weights": {"stratified": -1}}, 'extra_sample_weights={"stratified": -1.0} (must be all >= 0)'),
    ({"validation_every": 0}, "validation_every=0 (must be >= 1)"),
])
def test_out_of_range_values_are_errors_naming_the_field(overrides, named):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.validate(config_lib.resolve("mlc", "ldrsp", overrides))
    assert named in str(error.value)


def test_every_shipped_task_and_method_is_valid():
    for task in config_lib.available_tasks():
        for method in config_lib.methods_of(config_lib.load_task(task)):
            config_lib.validate(config_lib.resolve(task, method))


BAD_FLAGS = [
    ("--epochs=-3", "epochs=-3 (must be >= 1)"),
    ("--refine_steps=-1", "test_refine.steps=-1 (must be >= 0)"),
]
BAD_ASSIGNMENTS = [
    ("d_optimizer.learning_rate=fast", "d_optimizer.learning_rate: expected a number, got 'fast'"),
    ("data.batch_size=abc", "data.batch_size: expected an integer, got 'abc'"),
    ("inference_net.hidden=300", "inference_net.hidden: expected a list of integers, e.g. [150], got 300"),
    ("data.validation_fraction=2", "data.validation_fraction=2.0 (must be in [0, 1))"),
]


@pytest.fixture(scope="module")
def bad_value_launches(tmp_path_factory):
    """{flag or assignment: (finished launcher run, its folder)} for every bad value below, run
    in this process (tests/test_launch.py checks one through a fresh `python -m tfsp.launch`)."""
    from conftest import launch_in_process, write_tiny_mulan

    root = tmp_path_factory.mktemp("bad_values")
    arff, xml = write_tiny_mulan(root)
    cases = {}
    for i, (flag, _) in enumerate(BAD_FLAGS):
        folder = root / f"flag{i}"
        folder.mkdir()
        cases[flag] = (folder, ["--task=mlc", "--method=ldrsp", f"--arff={arff}", f"--xml={xml}", flag,
                                f"--model_dir={folder / 'run'}", f"--results_dir={folder / 'results'}"])
    for i, (assignment, _) in enumerate(BAD_ASSIGNMENTS):
        folder = root / f"assignment{i}"
        folder.mkdir()
        cases[assignment] = (folder, ["--task=mlc", "--set", assignment, f"--model_dir={folder / 'run'}"])
    return {name: (launch_in_process(*args, cwd=root), folder) for name, (folder, args) in cases.items()}


@pytest.mark.parametrize("flag,named", BAD_FLAGS)
def test_launcher_rejects_bad_values_before_writing_anything(bad_value_launches, flag, named):
    proc, folder = bad_value_launches[flag]
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: invalid configuration: {named}"
    assert not (folder / "run").exists() and not (folder / "results").exists()


# ----- item 3: every bad input a clear error ----------------------------------------------------
@pytest.mark.parametrize("assignment,message", [
    ("d_optimizer.learning_rate=fast", "d_optimizer.learning_rate: expected a number, got 'fast'"),
    ("data.batch_size=abc", "data.batch_size: expected an integer, got 'abc'"),
    ("data.batch_size=2.5", "data.batch_size: expected an integer, got 2.5"),
    ("inference_net.hidden=300", "inference_net.hidden: expected a list of integers, e.g. [150], got 300"),
    ('inference_net.hidden=[300, "x"]', "inference_net.hidden: expected a list of integers, e.g. [150], got [300, 'x']"),
    ('extra_sample_weights={"stratified": "high"}',
     "extra_sample_weights: expected an object of numbers, e.g. {\"name\": 0.5}, got {'stratified': 'high'}"),
    ("crop_mode=3", "crop_mode: expected a string, got 3"),
    ("deterministic=maybe", "deterministic: expected true or false, got 'maybe'"),
    ("d_optimizer.clipnorm=big", "d_optimizer.clipnorm: expected a number or null, got 'big'"),
    ("data=3", "data must be an object, got 3"),
])
def test_values_of_the_wrong_type_name_field_value_and_type(assignment, message):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.resolve("mlc", "ldrsp", config_lib.parse_assignments([assignment]))
    assert str(error.value) == f"command line: {message}"


def test_values_of_the_right_type_are_converted():
    config = config_lib.resolve("mlc", "ldrsp", config_lib.parse_assignments([
        "d_optimizer.learning_rate=1", "data.batch_size=16.0", "deterministic=1", "d_optimizer.clipnorm=null",
        'extra_sample_weights={"stratified": 1}']))
    optimizer = config.settings.d_optimizer
    assert optimizer.learning_rate == 1.0 and isinstance(optimizer.learning_rate, float)
    assert config.data.batch_size == 16 and isinstance(config.data.batch_size, int)
    assert config.deterministic is True and optimizer.clipnorm is None
    assert config.settings.extra_sample_weights == {"stratified": 1.0}


@pytest.mark.parametrize("assignment,named", BAD_ASSIGNMENTS)
def test_launcher_prints_one_line_error_without_usage(bad_value_launches, assignment, named):
    proc, folder = bad_value_launches[assignment]
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr  # one line, no help text
    assert proc.stderr.startswith("error: ") and named in proc.stderr, proc.stderr
    assert not (folder / "run").exists()


# ----- item 2: permissions ----------------------------------------------------------------------
def test_results_and_exports_get_umask_permissions(tmp_path):
    from conftest import correlated_multilabel
    from tfsp import experiment, export
    from tfsp.spec import multilabel_spec

    previous = os.umask(0o022)
    try:
        results.write_json(tmp_path / "r" / "record.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "r" / "record.json").stat().st_mode) == 0o644
        os.umask(0o077)
        results.write_json(tmp_path / "r" / "private.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "r" / "private.json").stat().st_mode) == 0o600
        assert [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")] == []
        os.umask(0o022)

        x, y = correlated_multilabel(n=16, num_features=8, num_labels=6)
        spec = multilabel_spec("synthetic", 8, 6, feature_mean=x.mean(0), feature_std=x.std(0) + 1e-6)
        config = config_lib.resolve("mlc", "feedforward")
        model = experiment.build_method(config, spec, steps_per_epoch=1)
        version = export.export_saved_model(model, tmp_path / "exports")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(version.stat().st_mode) == 0o755
    for path in version.rglob("*"):  # what TensorFlow wrote inside is readable by others too
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, (path, oct(mode))


# ----- item 5: results a user can re-run --------------------------------------------------------
def test_recorded_command_runs_from_the_repository_root(tmp_path):
    root = results.REPO_ROOT
    launcher = str(root / "tfsp" / "launch.py")
    data = tmp_path / "data"
    environ = {"TFSP_DATA_DIR": str(data)}

    inside = results.portable_command(
        [launcher, "--task=mlc", "--model_dir=../runs/x", "--arff", "fixtures/a b.arff",
         "--set", "data.xml=fixtures/a.xml", "--set=seed=1", f"--data_dir={root.parent / 'shared' / 'data'}",
         "--results_dir="], cwd=root / "tests", environ={})
    assert inside == {"command": "python -m tfsp.launch --task=mlc --model_dir=runs/x --arff 'tests/fixtures/a b.arff' "
                                 "--set data.xml=tests/fixtures/a.xml --set=seed=1 --data_dir=../shared/data "
                                 "--results_dir=",
                      "command_portable": True, "command_runs_from": "repository root"}

    from_env = results.portable_command(
        [launcher, f"--data_dir={data}", "--set", f"data.arff={data / 'sub dir' / 'x.arff'}"],
        cwd=root, environ=environ)
    assert from_env["command"] == ('python -m tfsp.launch --data_dir="$TFSP_DATA_DIR" '
                                   '--set data.arff="$TFSP_DATA_DIR/sub dir/x.arff"')
    assert from_env["command_portable"]
    # The shell expands it back to the paths given.
    echoed = subprocess.run(["bash", "-c", "printf '%s\\n' " + from_env["command"].split(" ", 3)[3]],
                            env={**os.environ, **environ}, capture_output=True, text=True, check=True)
    assert echoed.stdout.splitlines() == [f"--data_dir={data}", "--set", f"data.arff={data / 'sub dir' / 'x.arff'}"]

    # A path elsewhere is kept, absolute, and the record says the command is not portable; a
    # default path relative to another working directory is spelled out.
    outside = results.portable_command([launcher, "--model_dir=run", f"--export_dir={data / 'e'}"],
                                       cwd=tmp_path, environ=environ,
                                       implied={"model_dir": "ignored", "results_dir": "results"})
    assert outside["command"] == (f"python -m tfsp.launch --model_dir={tmp_path / 'run'} --export_dir={data / 'e'} "
                                  f"--results_dir={tmp_path / 'results'}")
    assert not outside["command_portable"]
    at_root = results.portable_command([launcher], cwd=root, implied={"results_dir": "results"})
    assert at_root["command"] == "python -m tfsp.launch" and at_root["command_portable"]


def fake_checkout(folder, dirty: bool):
    """GIT_DIR / GIT_WORK_TREE of a one-commit repository, with an uncommitted change if `dirty`."""
    folder.mkdir()
    (folder / "file.txt").write_text("committed\n")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "file.txt"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fixture"], check=True)
    if dirty:
        (folder / "file.txt").write_text("changed\n")
    revision = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return {**ENV, "GIT_DIR": str(folder / ".git"), "GIT_WORK_TREE": str(folder)}, revision


def test_launcher_records_a_rerunnable_command_and_warns_of_a_dirty_tree(tiny_mulan, tmp_path, monkeypatch):
    from conftest import launch_in_process

    arff, xml = tiny_mulan
    env, revision = fake_checkout(tmp_path / "checkout", dirty=True)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):  # the launcher's git calls see this checkout
        monkeypatch.setenv(name, env[name])
    # From another working directory, with the default --model_dir (relative to it).
    proc = launch_in_process("--task=mlc", "--method=feedforward", f"--arff={arff}", f"--xml={xml}", "--epochs=1",
                             f"--results_dir={tmp_path / 'results'}", "--verbose=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == ("warning: the working tree has uncommitted changes; the results will record "
                        f"git revision {revision}-dirty")
    assert lines[1].startswith("mlc-feedforward: ")  # the warning came before training
    record = json.loads((tmp_path / "results" / "mlc-feedforward.json").read_text())
    assert record["git_rev"] == f"{revision}-dirty"
    assert record["command_runs_from"] == "repository root"
    assert record["command_portable"] is False  # the fixture lives outside the repository
    assert shlex.split(record["command"]) == [
        "python", "-m", "tfsp.launch", "--task=mlc", "--method=feedforward", f"--arff={arff}", f"--xml={xml}",
        "--epochs=1", f"--results_dir={tmp_path / 'results'}", "--verbose=0",
        f"--model_dir={tmp_path / 'runs' / 'mlc-feedforward'}"]
    assert (tmp_path / "runs" / "mlc-feedforward" / "final").is_dir()

    env, _ = fake_checkout(tmp_path / "clean", dirty=False)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.setenv(name, env[name])
    proc = launch_in_process("--mode=evaluate", "--task=mlc", "--method=feedforward", f"--arff={arff}",
                             f"--xml={xml}", "--epochs=1", f"--results_dir={tmp_path / 'evaluated'}", "--verbose=0",
                             f"--model_dir={tmp_path / 'runs' / 'mlc-feedforward'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stdout


def test_settings_another_setting_makes_unused_do_not_tell_runs_apart():
    """epochs under an updates budget, and DVN's train_refine when it trains with test_refine,
    change nothing a run did: a model dir's check ignores them when both configurations leave
    them unused, and names them otherwise."""
    from tfsp.stored_config import config_differences

    def dvn(**overrides):
        return config_lib.resolve("mlc", "dvn", config_lib.deep_update({"epochs": 5}, overrides))

    budgeted = dict(updates=100, train_with_test_refine=True)
    stored = dvn(**budgeted).to_dict()
    assert config_differences(stored, dvn(**budgeted, epochs=7, train_refine={"steps": 3})) == []
    names = {name for name, _, _ in config_differences(stored, dvn(updates=100, epochs=7,
                                                                   train_refine={"steps": 3}))}
    assert names == {"train_with_test_refine", "train_refine.steps"}
    names = {name for name, _, _ in config_differences(dvn().to_dict(), dvn(epochs=7))}
    assert names == {"epochs"}


def test_cpu_description_names_model_and_bfloat16_features(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert results.cpu_description(str(cpuinfo)) == {"cpu_model": "Test CPU",
                                                       "bfloat16_features": ["avx512_bf16"]}
    assert results.cpu_description(str(tmp_path / "missing")) == {}
