"""The `resource_study` config section, each probe's spec and the study's paths.

Planning code (the Snakefile imports it): no torch.
"""

from __future__ import annotations

from ...errors import ConfigError


#: Defaults of the `resource_study` section: the paper's memory setting (Table 7).
DEFAULTS = {"batch_size": 8, "seq_len": 512, "steps": 3, "warmup_steps": 1}
#: Training settings that change what a step costs (the rest, e.g. lr, does not): only these
#: are a probe's params, so a learning-rate change does not rerun probes.
COST_SETTINGS = ("device", "precision", "tf32", "fused_optimizer", "compile", "weight_decay", "max_grad_norm",
                 "optimizer", "processes", "parallel")
#: Probe statuses: measured; not run as it would repeat another configuration (top-k with k
#: above the depth) or no length fits; the method does not apply to the model (BitFit on a
#: model without bias terms: the method's check or build refuses it); out of memory.
OK, SKIPPED, NOT_APPLICABLE, OOM = "ok", "skipped", "not_applicable", "oom"
DEFAULT_HEAD = {"task": None, "task_kind": "classification", "num_labels": 2}


def section(config: dict) -> dict | None:
    """The enabled `resource_study` section with its defaults, else None."""
    sec = config.get("resource_study")
    if not sec or not sec.get("enabled", True):
        return None
    return {**DEFAULTS, **sec}


def check_config(config: dict) -> dict | None:
    """Cross-check the `resource_study` section (the schema checked its shape): every model,
    method and the task are configured. Raises ConfigError naming the key; returns section()."""
    sec = section(config)
    if sec is None:
        return None
    for key in ("models", "methods"):
        names = sec.get(key)
        if not names:
            raise ConfigError(f"config key 'resource_study.{key}': a non-empty list of {key} is required")
        for i, name in enumerate(names):
            if name not in config[key]:
                raise ConfigError(f"config key 'resource_study.{key}[{i}]': unknown {key[:-1]} '{name}' "
                                  f"(defined: {', '.join(config[key])})")
    task = sec.get("task")
    if task is not None and task not in config["tasks"]:
        raise ConfigError(f"config key 'resource_study.task': unknown task '{task}' "
                          f"(defined: {', '.join(config['tasks'])})")
    for key in ("batch_size", "seq_len", "steps", "warmup_steps"):
        value = sec[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "warmup_steps" else 1):
            raise ConfigError(f"config key 'resource_study.{key}': expected a positive integer, got {value!r}")
    return sec


def model_task(config: dict, model: str) -> str | None:
    """The task whose head the probes of `model` use and whose runs the table shows: the
    section's `task`, else the first task (in study order) that `model` trains on; None when
    the model trains on nothing (the probe then uses a 2-label classification head)."""
    from ...plan import config as cfg

    sec = section(config) or {}
    if sec.get("task"):
        return sec["task"]
    return next((r.task for r in cfg.runs(config) if r.model == model), None)


def probe_spec(config: dict, model: str, method: str) -> dict:
    """Everything a probe needs besides the model and method (the `resource_probe` rule's
    params): the setting, the head, and the cost-relevant training settings of the run."""
    from ...plan import config as cfg

    sec = section(config)
    task = model_task(config, model)
    if task is not None:
        hp = cfg.hyperparameters(config, model, task, method)
        spec = config["tasks"][task]
        head = {"task": task, "task_kind": spec["kind"], "num_labels": spec.get("num_labels")}
    else:
        hp = dict(config["training"])
        for layer in (config["models"][model], config["methods"][method]):
            hp.update(layer.get("training") or {})
        hp.update((config["models"][model].get("method_training") or {}).get(method) or {})
        head = dict(DEFAULT_HEAD)
    return {
        **head,
        "batch_size": int(sec["batch_size"]),
        "seq_len": int(sec["seq_len"]),
        "steps": int(sec["steps"]),
        "warmup_steps": int(sec["warmup_steps"]),
        "seed": int(config["seeds"][0]),
        "hyperparameters": {k: hp[k] for k in COST_SETTINGS if k in hp},
    }


def study_models(config: dict) -> list[str]:
    return list((section(config) or {}).get("models") or [])


def study_methods(config: dict) -> list[str]:
    return list((section(config) or {}).get("methods") or [])


def study_runs(config: dict) -> list:
    """The study runs (lwob.plan.config.Run) of the resource study's models and methods, every task."""
    from ...plan import config as cfg

    models, methods = set(study_models(config)), set(study_methods(config))
    return [r for r in cfg.runs(config) if r.model in models and r.method in methods]


def table_spec(config: dict) -> dict:
    """The resolved section for the table rule: settings, models, methods, task per model, and
    the paper's numbers shown beside the probes: the config's `reference` CSV (also the rule's
    input, so editing it redraws the table) and `reference_note` (the caption says it)."""
    sec = section(config)
    return {**{k: v for k, v in sec.items() if k != "task"}, "tasks": {m: model_task(config, m) for m in sec["models"]},
            "reference": config.get("reference") or None, "reference_note": config.get("reference_note") or None}
