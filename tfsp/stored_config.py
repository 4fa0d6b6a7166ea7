"""Stored configurations (a model dir's config.json, a record's "config"): read in any tfsp
version's layout and compared with a configuration of this one, field by field."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Callable, Dict, List, Tuple

from tfsp.config import ExperimentConfig, merge_into, setting_name, settable_fields

LOCATION_FIELDS = ("data.data_dir", "data.arff", "data.xml", "data.eval_batch_size")
"""Fields that say where the data is read from and how many test examples go in a batch: the
same files may move between machines, and neither changes a trained weight or a metric."""


def leaf_fields(instance, prefix: str = "") -> Dict[str, Any]:
    """{"data.batch_size": 32, "settings.sample_weights": {...}, ...}: every settable field of a
    (nested) config dataclass that is not itself a dataclass, by its dotted path."""
    leaves: Dict[str, Any] = {}
    for f in settable_fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            leaves.update(leaf_fields(value, f"{prefix}{f.name}."))
        else:
            leaves[prefix + f.name] = copy.deepcopy(value)
    return leaves


# The configuration of tfsp before methods had settings of their own: one flat ExperimentConfig
# holding every method's fields side by side. Model dirs' config.json and records' "config"
# written then are read through this mapping.
RENAMED_SETTINGS = {"infnet_test_weight": "test_weight", "infnet_cross_entropy_weight": "cross_entropy_weight"}
"""Old flat name -> the name of the field in its method's settings (the others kept their names)."""
FLATTENED_GROUPS = ("implicit",)
"""Old groups whose fields are now fields of the method's settings ("implicit.energy_weight" ->
the implicit method's "energy_weight")."""


def renamed_settings(flat: Dict[str, Any], settings) -> Dict[str, Any]:
    """`flat` (task-file or --set layout) with the old names of `settings`' fields replaced by
    theirs; keys already valid are left alone."""
    names = {f.name for f in settable_fields(settings)} if settings is not None else set()
    renamed: Dict[str, Any] = {}
    for key, value in flat.items():
        if key in FLATTENED_GROUPS and key not in names and isinstance(value, dict):
            renamed.update(value)
        else:
            renamed[RENAMED_SETTINGS[key] if key in RENAMED_SETTINGS and key not in names else key] = value
    return renamed


def upgrade_config_dict(stored: Dict[str, Any]) -> Dict[str, Any]:
    """A stored configuration (ExperimentConfig.to_dict() of any tfsp version) in this version's
    layout: the experiment's fields, and the method's under "settings". Of an old flat one, the
    fields of the method that ran move under "settings" (renamed_settings); the other methods'
    fields, which it did not use, are dropped."""
    if not isinstance(stored, dict) or "settings" in stored:
        return stored
    from tfsp.methods import registry

    experiment_fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    upgraded = {k: v for k, v in stored.items() if k in experiment_fields}
    settings_class = registry.settings_class(stored.get("algorithm") or stored.get("method") or "")
    if settings_class is not None:
        names = {f.name for f in settable_fields(settings_class)}
        flat = renamed_settings({k: v for k, v in stored.items() if k not in experiment_fields}, settings_class)
        upgraded["settings"] = {k: v for k, v in flat.items() if k in names}
    return upgraded


def settings_view(stored: Dict[str, Any]) -> Dict[str, Any]:
    """A stored configuration with its method's settings beside the experiment's fields, by the
    names task files and --set use (see setting_name)."""
    upgraded = upgrade_config_dict(stored)
    return {**{k: v for k, v in upgraded.items() if k != "settings"}, **(upgraded.get("settings") or {})}


def config_from_dict(stored: Dict[str, Any], origin: str) -> ExperimentConfig:
    """The ExperimentConfig a model dir's config.json (of any tfsp version) stores."""
    return merge_into(ExperimentConfig(), upgrade_config_dict(stored), origin)


def unused_settings(value_of: Callable[[str], Any]) -> Tuple[str, ...]:
    """Setting names (or prefixes) that other settings make unused, given a lookup of a
    setting's value by name: the epochs of a run budgeted in updates, and DVN's train_refine
    when it trains with test_refine. Such fields do not tell two configurations apart."""
    unused = ("epochs",) if value_of("updates") else ()
    if value_of("train_with_test_refine"):
        unused += ("train_refine",)
    return unused


def named_by(name: str, prefixes) -> bool:
    """Whether setting `name` is one of `prefixes` or inside one (e.g. "train_refine.steps")."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def config_differences(stored: Dict[str, Any], config: ExperimentConfig,
                       may_differ=()) -> List[tuple]:
    """[(field, stored value, value in config)] for every field whose value in `config` differs
    from `stored` (an ExperimentConfig.to_dict(): a model dir's config.json, a record's "config";
    an old flat one is read through upgrade_config_dict). Fields are named as --set names them.
    A field `stored` lacks counts at its default, as the code behaved before the field existed;
    fields of `stored` that no longer exist are not settings any more and are ignored. Fields
    named in `may_differ` (dotted paths, or a prefix such as "test_refine") are skipped."""
    stored = upgrade_config_dict(stored)
    defaults = leaf_fields(ExperimentConfig(method=config.method, algorithm=config.algorithm))
    pairs = {}  # setting name: (stored value, value in config)
    for path, value in leaf_fields(config).items():
        node: Any = stored
        for part in path.split("."):
            node = node.get(part, defaults.get(path)) if isinstance(node, dict) else defaults.get(path)
        pairs[setting_name(path)] = (node, value)
    # A field unused in both configurations changes nothing the run did.
    unused_in_both = set(unused_settings(lambda n: pairs.get(n, (None,))[0])) & set(
        unused_settings(lambda n: pairs.get(n, (None, None))[1]))
    return [(name, old, new) for name, (old, new) in pairs.items()
            if old != new and not named_by(name, may_differ) and not named_by(name, unused_in_both)]


def describe_differences(differences, stored_name: str) -> str:
    """"seed: 0 in <stored_name>, 1 now; ..." for config_differences' list."""
    return "; ".join(f"{path}: {json.dumps(old)} in {stored_name}, {json.dumps(new)} now"
                     for path, old, new in differences)


def assignments_for(differences) -> str:
    """The --set flags that restore the stored values of config_differences' list."""
    import shlex

    return " ".join(f"--set {shlex.quote(f'{path}={json.dumps(old)}')}" for path, old, _ in differences)
