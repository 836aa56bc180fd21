"""Job specs: YAML (or TOML) files that describe a job completely, as typed, frozen dataclasses.

A spec file names its kind and holds that job's configuration under the same key::

    kind: infer
    infer:
      inputs: [s3://corpus/videos/]
      model: bev
      checkpoint: s3://models/BEV.pth
      body_models: s3://models/smpl/
      output: s3://corpus/results/
      settings: {precision: bf16}
      resources: {actors: 4}

Conversion is strict: unknown keys, missing required keys and values of the wrong type are
rejected with the dotted key name (``infer.settings.precison: unknown key``); value checks of the
dataclasses themselves (``__post_init__``) are reported with the key of the object they belong to.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from eval.common import EvalConfig
from eval.job import EvalJob
from eval.leaderboard_job import LeaderboardJob
from eval.registry import default_split
from eval.tracking_job import MotExportJob, TrackingEvalJob
from jobs.config import InferConfig, with_checkpoint_names
from jobs.pseudo_label import PseudoLabelConfig
from jobs.synth import SynthConfig
from jobs.track import TrackJob
from pipelines.export import ExportJob


class SpecError(ValueError):
    """A spec is malformed; the message starts with the offending key."""


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """``meshfleet eval``: the evaluation, where its outputs go, and optionally inference first.
    ``address``: the Ray cluster for the evaluation's parallel work (and the inference, unless
    ``infer.address`` says otherwise); None runs an embedded local Ray."""

    config: EvalConfig
    output_json: Path | None = None
    mlflow_uri: str | None = None
    use_mlflow: bool = True
    infer: InferConfig | None = None
    address: str | None = None

    def job(self) -> EvalJob:
        return EvalJob(self.config, self.output_json, self.mlflow_uri, self.use_mlflow, self.infer)


KINDS: dict[str, type] = {"infer": InferConfig, "eval": EvalSpec, "eval-tracking": TrackingEvalJob,
                          "export-mot": MotExportJob, "export": ExportJob, "leaderboard": LeaderboardJob,
                          "track": TrackJob, "synth": SynthConfig, "pseudo-label": PseudoLabelConfig}


def _origin(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(tp), typing.get_args(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin, args = _origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, key)
            except SpecError as err:
                errors.append(str(err))
        raise SpecError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {options}")
    if tp is Any or tp is object:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{key}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SpecError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        if not isinstance(value, str):
            raise SpecError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    raise SpecError(f"{key}: unsupported type {tp}")


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` (nested mappings), strictly."""
    if not isinstance(data, dict):
        raise SpecError(f"{key or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{key}." if key else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{prefix}{name}: missing required key")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise SpecError(f"{key or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> Any:
    """A spec dataclass as plain YAML/JSON-able data (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_spec_file(path: str | Path) -> dict:
    """The raw mapping of a YAML / TOML / JSON spec file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err})") from err
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise SpecError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({err})") from err
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with 'kind' and the job's section")
    return data


def parse_spec(data: dict, expected_kind: str | None = None) -> tuple[str, Any]:
    """(kind, job config) from a raw spec mapping."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise SpecError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
    if expected_kind and kind != expected_kind:
        raise SpecError(f"kind: this command runs '{expected_kind}' specs, the file is '{kind}'")
    unknown = sorted(set(data) - {"kind", kind})
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown key (a '{kind}' spec holds only 'kind' and '{kind}')")
    return kind, build(kind, data.get(kind, {}))


def build(kind: str, section: Any) -> Any:
    """The typed job of ``kind`` from its spec section, with the names that are derived where not
    given: the model and BEV variant from the checkpoint file name (infer, and eval's inference),
    the evaluated split (eval)."""
    if isinstance(section, dict) and kind in ("infer", "pseudo-label"):
        section = with_checkpoint_names(section)
    if isinstance(section, dict) and kind == "eval":
        section = dict(section)
        if isinstance(section.get("infer"), dict):
            section["infer"] = with_checkpoint_names(section["infer"])
        config = section.get("config")
        if isinstance(config, dict) and not config.get("split"):
            section["config"] = {**config, "split": default_split(str(config.get("benchmark")), config.get("annots"))}
    return from_dict(KINDS[kind], section, kind)


def load_spec(path: str | Path, expected_kind: str | None = None) -> tuple[str, Any]:
    return parse_spec(read_spec_file(path), expected_kind)


def dump_spec(kind: str, config: Any) -> str:
    """The fully resolved spec as YAML (what ``--dry-run`` prints)."""
    return yaml.safe_dump({"kind": kind, kind: to_dict(config)}, sort_keys=False)


def merge(base: dict, override: dict) -> dict:
    """Deep merge: ``override`` wins, mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
