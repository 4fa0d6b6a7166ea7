"""The tfsp launcher: `python -m tfsp.launch --task=bibtex --method=ldrsp --data_dir=...`.

Trains the method on the task with the task file's hyper-parameters (tasks/<task>.json),
evaluates on the test split, and writes TensorBoard logs and checkpoints under
--model_dir and results/<task>-<method>[-seed<N>].json under --results_dir. Rerunning the
same command resumes from the last finished epoch; rerunning it with other settings, or into
a results file of another run, is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import sys

# TensorFlow's own log lines hide the launcher's output; TF_CPP_MIN_LOG_LEVEL=0 restores them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

FLAGS = flags.FLAGS

_CPP_LOG_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+ +\d+ \S+\.(?:cc|cpp|h):\d+\] ")
_PYTHON_WARNING = re.compile(r"\S+:\d+: \w*Warning: ")


def _start_up_lines_to_show(text: str, level: int) -> str:
    """The lines of TensorFlow's start-up stderr that TF_CPP_MIN_LOG_LEVEL `level` lets through
    (0 info, 1 warnings, 2 errors, 3 none), but not the cuInit failure of a machine without CUDA
    driver. A line that is not a C++ log record (a continuation) goes the way of the record before."""
    no_cuda_driver = "Could not find cuda drivers" in text
    shown, keep = [], True
    for line in text.splitlines(keepends=True):
        record = _CPP_LOG_LINE.match(line)
        if record:
            keep = ("IWEF".index(record.group(1)) >= level
                    and not (no_cuda_driver and "failed call to cuInit" in line))
        elif line.startswith("WARNING: All log messages before absl::InitializeLog()"):
            keep = False  # absl's notice that records go to stderr: of no use once they are filtered
        elif _PYTHON_WARNING.match(line):
            keep = True
        if keep:
            shown.append(line)
    return "".join(shown)


def _quiet_tensorflow_start_up() -> None:
    """Keeps TensorFlow's log lines below TF_CPP_MIN_LOG_LEVEL (default 2: errors) out of the
    launcher's output. The level alone does not silence start-up: `import tensorflow` loads two
    native libraries, each with its own copy of absl logging, and each writes its start-up lines
    (oneDNN, CUDA drivers) unfiltered, as absl does before absl::InitializeLog, so they came
    twice; the cuInit failure of a CPU-only machine is an error, above level 2. So TensorFlow is
    imported here with stderr filtered. Its Python INFO lines (checkpoints' "Sharding callback
    duration", SavedModel writing) go too, unless --verbosity=1 asks for them.
    TF_CPP_MIN_LOG_LEVEL=0 shows everything."""
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if level <= 0:
        return
    if "tensorflow" not in sys.modules:
        _import_tensorflow_with_stderr_filtered(level)
    if FLAGS.verbosity < 1:
        import logging as python_logging

        # TensorFlow logs through absl's logger as well as its own: told apart by file.
        package = os.path.dirname(sys.modules["tensorflow"].__file__) + os.sep
        logging.get_absl_handler().addFilter(
            lambda record: record.levelno >= python_logging.WARNING or not record.pathname.startswith(package))


def _import_tensorflow_with_stderr_filtered(level: int) -> None:
    """Imports TensorFlow and initializes its devices (where cuInit runs) with stderr caught, then
    passes on the lines `level` lets through (all of them if the import fails)."""
    import tempfile

    sys.stderr.flush()
    stderr = os.dup(2)
    with tempfile.TemporaryFile() as caught:  # a file, not a pipe, which could fill up and block
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            level = 0  # all of it: the cause of the failure may be in there
            raise
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            os.close(stderr)
            caught.seek(0)
            sys.stderr.write(_start_up_lines_to_show(caught.read().decode(errors="replace"), level))
            sys.stderr.flush()


app.call_after_init(_quiet_tensorflow_start_up)  # after flag parsing: --help needs no TensorFlow

flags.DEFINE_enum("mode", "train", ["train", "evaluate", "export", "probe", "check"],
                  "train: train then evaluate; evaluate: evaluate the weights a run left in --model_dir; "
                  "export: write a SavedModel of them to --export_dir; probe: the value network's "
                  "mean value vs the oracle for reference outputs (ground truth, prediction, zeros, "
                  "noise, ...) on the validation split, written to <results_dir>/<name>-probe.json; "
                  "check: the quick check before a long run, a fresh value network trained alone for "
                  "--check_updates on tuples made from y*, then scored on ranking y* above wrong "
                  "outputs and ordering refinement iterates as the oracle does (<name>-check.json).")
flags.DEFINE_integer("check_updates", 600, "--mode=check: updates of the value network on fixed tuples.")
flags.DEFINE_string("task", None, "Task name (a file tasks/<task>.json) or a path to a task JSON file.")
flags.DEFINE_string("method", None, "Method; default: the task's default_method.")
flags.DEFINE_string("data_dir", None, "Folder with the dataset files (default: $TFSP_DATA_DIR).")
flags.DEFINE_string("arff", None, "--task=mlc: path of the MULAN .arff file.")
flags.DEFINE_string("xml", None, "--task=mlc: path of the MULAN label .xml file.")
flags.DEFINE_string("model_dir", None, "Where TensorBoard logs and checkpoints go (default: runs/<results file name>).")
flags.DEFINE_string("results_dir", "results", "Where <task>-<method>[-<loss>][-seed<N>][<suffix>].json is written "
                    "(empty: no results file). Seed 0 has no -seed part, so the committed results/*.json keep "
                    "their names and the commands they record rewrite them; the -seed part is left out "
                    "when --results_suffix already names the seed (e.g. --seed=1 --results_suffix=-seed1).")
flags.DEFINE_string("results_suffix", "", "Appended to the results file name, e.g. -lr3e-4.")
flags.DEFINE_bool("overwrite_results", False, "Replace a results file that holds the record of another run "
                  "(other settings, or no configuration). Without it such a run stops before training, "
                  "naming the differences; the record of the same run (same settings, or its model dir "
                  "resumed with more epochs) is always replaced.")
flags.DEFINE_integer("epochs", None, "Training epochs; replaces the task file's budget in updates, if any.")
flags.DEFINE_integer("batch_size", None, "Training batch size.")
flags.DEFINE_float("learning_rate", None, "Learning rate of every optimizer of the method.")
flags.DEFINE_integer("refine_steps", None, "Test-time refinement steps.")
flags.DEFINE_float("refine_step_size", None, "Test-time refinement step size η.")
flags.DEFINE_enum("primary_loss", None, ["ssvm", "cd", "dvn"],
                  "--method=implicit: the outer (primary) loss; results go to <task>-implicit-<loss>.json.")
flags.DEFINE_integer("seed", None, "Random seed (weights, shuffling, sampling).")
flags.DEFINE_bool("deterministic", None, "Enable TF op determinism (exact reruns, slower).")
flags.DEFINE_integer("step_curve", 0, "If > 0: also record the test metric after each refinement step 0..N.")
flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"],
                  "As in Keras: 0 silent; 1 progress bars (dataset preparation, training, evaluation); "
                  "2 one line per epoch and per evaluation; auto = 1.")
flags.DEFINE_string("export_dir", None, "If set: write a SavedModel for TF Serving to <export_dir>/<next version>/ "
                    "after training (or, with --mode=export, from the weights in --model_dir).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored (all local devices) or "
                  "multi_worker (the workers in TF_CONFIG; only the chief writes results and "
                  "checkpoints). See launch/multi_worker.sh.")
flags.DEFINE_multi_string("set", [], "Any config field, e.g. --set data.validation_fraction=0.1 "
                          "--set value_net.hidden=[300].")


def overrides_from_flags(settings=None):
    """The flags as config overrides; `settings`, the method's settings as the task file has them,
    say which optimizers --learning_rate sets and whether the method refines (--refine_*)."""
    from tfsp.config import ConfigError, OptimizerConfig, deep_update, parse_assignments

    overrides = {}
    data = {}
    if FLAGS.data_dir:
        data["data_dir"] = FLAGS.data_dir
    if FLAGS.arff:
        data["arff"] = FLAGS.arff
    if FLAGS.xml:
        data["xml"] = FLAGS.xml
    if FLAGS.batch_size is not None:
        data["batch_size"] = FLAGS.batch_size
    if data:
        overrides["data"] = data
    if FLAGS.epochs is not None:
        # An explicit epoch count is the budget, also on a task whose file sizes runs in
        # updates (`--set updates=N` still overrides it).
        overrides["epochs"] = FLAGS.epochs
        overrides["updates"] = 0
    if FLAGS.seed is not None:
        overrides["seed"] = FLAGS.seed
    if FLAGS.primary_loss is not None:
        overrides["primary_loss"] = FLAGS.primary_loss
    if FLAGS.deterministic is not None:
        overrides["deterministic"] = FLAGS.deterministic
    if FLAGS.learning_rate is not None:
        for name, value in vars(settings).items():
            if isinstance(value, OptimizerConfig):
                overrides[name] = {"learning_rate": FLAGS.learning_rate}
    refine = {}
    if FLAGS.refine_steps is not None:
        refine["steps"] = FLAGS.refine_steps
    if FLAGS.refine_step_size is not None:
        refine["step_size"] = FLAGS.refine_step_size
    if refine:
        if not hasattr(settings, "test_refine"):
            raise ConfigError(f"--refine_steps / --refine_step_size: {type(settings).__name__} has no "
                              "test-time refinement (test_refine)")
        overrides["test_refine"] = refine
    return deep_update(overrides, parse_assignments(FLAGS.set))


def results_name(config, suffix: str = "") -> str:
    """<task>-<method>[-<variant>][-seed<N>]<suffix> (the variant: e.g. the implicit trainer's
    primary loss, StructuredModel.variant): runs of different seeds get different results
    files (and default model dirs); seed 0 is unmarked, as in the committed results/*.json, and
    a suffix that already names the seed (-seed1) is not marked twice."""
    from tfsp.methods import registry

    variant = registry.get(config.algorithm or config.method).model_class.variant(config.settings)
    variant = f"-{variant}" if variant else ""
    seed = f"-seed{config.seed}" if config.seed and not re.search(rf"-seed{config.seed}(?!\d)", suffix) else ""
    return f"{config.task}-{config.method}{variant}{seed}{suffix}"


def fail(message, status: int) -> int:
    """The launcher's errors: one line on stderr, without the usage text; status 2 for a usage
    error (flags, settings, a model dir or results file of another run), 1 for the others."""
    print(f"error: {message}", file=sys.stderr)
    return status


def main(argv):
    if len(argv) > 1:
        return fail(f"unexpected arguments: {argv[1:]}", 2)
    from tfsp import config as config_lib

    if not FLAGS.task:
        return fail(f"--task is required; valid tasks: {config_lib.available_tasks()}", 2)
    try:
        # Validated before anything is written, so a bad value costs nothing.
        as_in_task_file = config_lib.resolve(FLAGS.task, FLAGS.method)
        config = config_lib.validate(config_lib.resolve(FLAGS.task, FLAGS.method,
                                                        overrides_from_flags(as_in_task_file.settings)))
    except config_lib.ConfigError as e:
        return fail(e, 2)

    from tfsp import experiment, results
    from tfsp.data.errors import DataError

    name = results_name(config, FLAGS.results_suffix)
    model_dir = FLAGS.model_dir or f"runs/{name}"
    results_path = f"{FLAGS.results_dir}/{name}.json" if FLAGS.results_dir else None
    verbose = "auto" if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    from tfsp.data.images import set_progress_verbosity

    set_progress_verbosity(verbose)  # dataset preparation; fit/evaluate take `verbose` directly
    if FLAGS.mode == "export":
        return _export(config, model_dir)
    if FLAGS.mode in ("probe", "check") and results_path:
        results_path = results_path[:-len(".json")] + f"-{FLAGS.mode}.json"
    # Written as run from the repository root, with the default paths (relative to the working
    # directory) spelled out when that is elsewhere.
    command = results.portable_command(sys.argv, implied={"model_dir": model_dir, "results_dir": FLAGS.results_dir})
    if results_path:
        revision = results.git_revision()
        if revision.endswith("-dirty"):
            print("warning: the working tree has uncommitted changes; the results will record git revision "
                  f"{revision}", flush=True)
    recording = dict(overwrite_results=FLAGS.overwrite_results, command=command)
    try:
        if FLAGS.mode == "train":
            record = experiment.run(config, model_dir, results_path, step_curve_steps=FLAGS.step_curve,
                                    verbose=verbose, strategy=FLAGS.strategy, export_dir=FLAGS.export_dir,
                                    **recording)
        elif FLAGS.mode == "probe":
            from tfsp import probe

            record = probe.probe_saved(config, model_dir, results_path, **recording)
        elif FLAGS.mode == "check":
            from tfsp import value_check

            record = value_check.check_saved(config, results_path, updates=FLAGS.check_updates,
                                             **recording)
            print(json.dumps(record["check"], indent=1))
            if results_path:
                print(f"results: {results_path}")
            return 0
        else:
            record = experiment.evaluate_saved(config, model_dir, results_path,
                                               step_curve_steps=FLAGS.step_curve, verbose=verbose, **recording)
    except config_lib.ConfigError as e:  # CheckpointMismatch included
        return fail(e, 2)
    except (DataError, experiment.TrainingDiverged, FileNotFoundError) as e:
        return fail(e, 1)
    if FLAGS.mode == "probe":
        for kind, entry in record["probe"].items():
            print(f"{kind:28s} value {entry['value']:9.4f}   oracle {entry['oracle']:.4f}")
        if results_path:
            print(f"results: {results_path}")
        return 0
    summary = {"metrics": record["metrics"], **({"metrics_inference_net": record["metrics_inference_net"]}
                                                if "metrics_inference_net" in record else {})}
    print(f"{name}: {summary}" + (f" (train {record['train_seconds']} s)" if "train_seconds" in record else ""))
    if results_path and record.get("strategy", {}).get("chief", True):
        print(f"results: {results_path}")
    if "export" in record:
        print(f"exported: {record['export']}")
    elif FLAGS.export_dir and FLAGS.mode != "train":  # training exported its model (on the chief)
        return _export(config, model_dir)
    return 0


def _export(config, model_dir) -> int:
    """export_saved, with a model dir trained with other settings (experiment.restore) reported as main's errors are."""
    from tfsp.config import ConfigError

    try:
        return export_saved(config, model_dir)
    except ConfigError as e:
        return fail(e, 2)


def export_saved(config, model_dir) -> int:
    """--mode=export (or evaluate) with --export_dir: the SavedModel of the weights the run left in
    model_dir, restored with its data (training exports the model it holds: experiment.run)."""
    from tfsp import export
    from tfsp.data.errors import DataError

    if not FLAGS.export_dir:
        return fail("--mode=export needs --export_dir", 2)
    try:
        path = export.export_from_model_dir(config, model_dir, FLAGS.export_dir)
    except (DataError, FileNotFoundError) as e:
        return fail(e, 1)
    print(f"exported: {path}")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
