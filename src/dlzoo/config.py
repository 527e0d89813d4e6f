"""Typed run configuration: dataclasses, YAML files and dotted `KEY=VALUE` overrides.

Every recipe's config is a dataclass tree rooted at `RecipeConfig`. Values from the command line or a YAML file are
converted to the annotated type of their field and rejected with a `UserError` when they do not fit, so a typo such
as `trainer.epoch=3` or `trainer.epochs=three` fails at once instead of half-way through a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dlzoo.errors import UserError, one_line


@dataclass
class TrainerConfig:
    epochs: int = 10
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    # Deterministic kernels where torch has them (slower on GPU; an op without one runs anyway, with a warning); on
    # the CPU results are already repeatable for a fixed thread count.
    deterministic: bool = False
    # auto: bf16 autocast on a GPU that supports it, fp32 elsewhere. auto-bf16: also bf16 on a CPU that computes
    # it natively (AVX512-BF16 or AMX), where it is faster; other CPUs only emulate bf16, so they stay in fp32.
    precision: Literal["auto", "auto-bf16", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    # torch.compile's mode when `compile` is on: reduce-overhead adds CUDA graphs, which replay a step's kernel
    # launches at once (for small networks whose steps are bound by launches); max-autotune also searches kernels.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    grad_clip: float | None = None
    eval_every: int = 1
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    # SPLIT.METRIC, e.g. val.accuracy: also keep the checkpoint of the evaluated epoch that scored best on it
    # (engine/best.py); summary.json names it.
    keep_best: str | None = None
    # When output is not a terminal, a plain progress line is printed at most this often.
    log_every_s: float = 15.0
    # CPU threads for torch (None: torch's default, one per core).
    threads: int | None = None


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    # onecycle: the LR rises linearly for `warmup` of training, then falls linearly (torch's OneCycleLR), while
    # momentum (Adam: beta1) moves the other way within +-0.05 of its value; cosine: linear warm-up then cosine to 0;
    # step: multiply by `gamma` every `step_epochs`; constant: no schedule.
    schedule: Literal["onecycle", "cosine", "step", "constant"] = "onecycle"
    warmup: float = 0.2
    step_epochs: int = 30
    gamma: float = 0.1


@dataclass
class DataConfig:
    source: str = ""
    # A file or folder that overrides where the source is looked for.
    path: str | None = None
    # Use only the first N training samples (quick tries and tests).
    limit: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 1000


@dataclass
class ModelConfig:
    """A section naming a registered model (`model`, a GAN's `generator` and `critic`)."""

    name: str = ""
    # Keyword arguments of the model factory, e.g. model.args.width=32.
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecipeConfig:
    recipe: str = ""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)


C = typing.TypeVar("C")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def _unknown_key(key: str, choices: typing.Iterable[str]) -> UserError:
    choices = list(choices)
    section, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean '{section + '.' if section else ''}{close[0]}'?" if close else \
        f"; known keys: {', '.join(choices)}"
    return UserError(f"unknown config key '{key}'{hint}")


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert `value` (a YAML value or a command-line string) to `annotation`, or raise a UserError."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, key)
    if origin is Literal:
        return _coerce_choice(value, args, key)
    if origin in (list, tuple):
        return _coerce_list(value, args[0] if args else Any, key)
    if origin is dict:
        return _coerce_mapping(value, key)
    if annotation is Any:
        return value
    if annotation is bool:
        return _coerce_bool(value, key)
    if annotation is int:
        return _coerce_int(value, key)
    if annotation is float:
        return _coerce_float(value, key)
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{key} must be a string, not {value!r}")
        return str(value)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            first = dataclasses.fields(annotation)[0].name
            raise UserError(f"{key} is a section; set one of its keys, e.g. {key}.{first}=...")
        return from_dict(annotation, value, prefix=f"{key}.")
    raise UserError(f"{key}: cannot set a value of type {annotation!r}")


def _coerce_union(value: Any, members: tuple[Any, ...], key: str) -> Any:
    """None for a none-like value when the union allows it, else the first member type that takes the value; the
    first member's complaint when none does."""
    is_none = value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", ""))
    if is_none and type(None) in members:
        return None
    errors = []
    for member in members:
        if member is type(None):
            continue
        try:
            return coerce(value, member, key)
        except UserError as error:
            errors.append(str(error))
    raise UserError(errors[0] if errors else f"{key}: bad value {value!r}")


def _coerce_choice(value: Any, choices: tuple[Any, ...], key: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if text not in choices:
        raise UserError(f"{key} must be one of {', '.join(map(str, choices))}, not {value!r}")
    return text


def _coerce_list(value: Any, item_type: Any, key: str) -> list[Any]:
    """A list from a YAML list, `[a, b]` or `a,b` text, or one value alone."""
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [coerce(item, item_type, key) for item in value]


def _coerce_mapping(value: Any, key: str) -> dict[Any, Any]:
    if isinstance(value, str):
        value = _yaml_scalar(value)
    if not isinstance(value, dict):
        raise UserError(f"{key} must be a mapping of names to values, not {value!r}")
    return dict(value)


def _coerce_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise UserError(f"{key} must be true or false, not {value!r}")


def _coerce_int(value: Any, key: str) -> int:
    if isinstance(value, bool):  # an int to Python, but `true` for a count is a mistake
        raise UserError(f"{key} must be an integer, not {value!r}")
    try:
        number = value if isinstance(value, int) else int(str(value).strip().replace("_", ""))
    except ValueError:
        raise UserError(f"{key} must be an integer, not {value!r}") from None
    if not -2**63 <= number < 2**63:  # what torch and numpy take: a larger one overflows deep inside them
        raise UserError(f"{key} must be an integer of at most 19 digits, not {value!r}")
    return number


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{key} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{key} must be a number, not {value!r}") from None
    if not math.isfinite(number):  # nan passes every range check (nan < 0 and nan > 0 are both false)
        raise UserError(f"{key} must be a finite number, not {value!r}")
    return number


# For `type_mismatch`: a size or count that only makes sense above zero (a checkpoint whose meta says 0 pixels or
# channels fails deep inside torch or OpenCV).
_POSITIVE = "positive"
PositiveInt = typing.Annotated[int, _POSITIVE]
PositiveFloat = typing.Annotated[float, _POSITIVE]


@dataclasses.dataclass(frozen=True)
class AtMost:
    """For `type_mismatch`: the largest value that makes sense (an `Annotated` marker)."""

    limit: int


# A side of a picture a network takes, in pixels: far more than any recipe's (AlexNet's 224), and few enough that a
# picture of that size fits in memory. A checkpoint whose meta says more is damaged: predicting from it failed with
# an allocation error deep inside torch.
MAX_PIXELS = 8192
Pixels = typing.Annotated[int, _POSITIVE, AtMost(MAX_PIXELS)]


def type_mismatch(value: Any, hint: Any, key: str) -> str | None:
    """What is wrong with `value`, as JSON gives it, for the type `hint` (None when it fits), naming the innermost
    entry that is wrong (`meta.preprocess.size is "abc", not an integer`). Unlike `coerce`, nothing is converted:
    this checks data dlzoo wrote itself (a checkpoint's metadata), where a value of another type means damage.
    Takes Any, None, bool, int, float (an int too), str, Literal, unions, list[X], dict[K, V], dataclasses and
    TypedDicts (mappings of their fields: none unknown, every one without a default given), and PositiveInt,
    PositiveFloat, Pixels (positive, at most MAX_PIXELS)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin is typing.Annotated:
        why = type_mismatch(value, args[0], key)
        if why is None and _POSITIVE in args[1:] and not value > 0:
            return f"{key} is {value}, not a positive number"
        limits = [marker.limit for marker in args[1:] if isinstance(marker, AtMost)]
        if why is None and limits and value > limits[0]:
            return f"{key} is {value}, more than {limits[0]}"
        return why
    if origin is typing.Literal:  # one of the named values (a text run's tokens: word or char); True is not 1
        if any(value == choice and type(value) is type(choice) for choice in args):
            return None
        return f"{key} is {json.dumps(value, default=str)[:40]}, not one of {', '.join(map(str, args))}"
    if origin in (typing.Union, types.UnionType):
        found = [type_mismatch(value, arg, key) for arg in args]
        if None in found:
            return None
        inside = [why for arg, why in zip(args, found, strict=True) if _is_kind(value, arg)]  # a list, but bad inside
        return inside[0] if inside else _not(value, hint, key)
    if not _is_kind(value, hint):
        return _not(value, hint, key)
    if origin is list and args:
        return _first([(item, args[0], f"{key}[{index}]") for index, item in enumerate(value)])
    if origin is dict and args:
        return _first([pair for name, item in value.items()
                       for pair in ((name, args[0], f"{key} key {name!r}"), (item, args[1], f"{key}.{name}"))])
    if dataclasses.is_dataclass(hint) or typing.is_typeddict(hint):
        return _fields_mismatch(value, hint, key)
    return None


def _first(entries: list[tuple[Any, Any, str]]) -> str | None:
    """The first `type_mismatch` among (value, hint, key) entries."""
    for value, hint, key in entries:
        why = type_mismatch(value, hint, key)
        if why is not None:
            return why
    return None


def _fields_mismatch(value: dict[str, Any], hint: type, key: str) -> str | None:
    """`type_mismatch` of a mapping that holds a dataclass's or a TypedDict's fields."""
    hints = typing.get_type_hints(hint, include_extras=True)  # PositiveInt kept, not read as int
    if dataclasses.is_dataclass(hint):
        required = [entry.name for entry in dataclasses.fields(hint)
                    if entry.default is dataclasses.MISSING and entry.default_factory is dataclasses.MISSING]
    else:
        required = sorted(hint.__required_keys__)
    unknown = [str(name) for name in value if name not in hints]
    missing = [name for name in required if name not in value]
    if unknown or missing:
        wrong = f"has no key {', '.join(missing)}" if missing else f"has an unknown key {', '.join(unknown)}"
        return f"{key} {wrong} (it holds {', '.join(hints)})"
    return _first([(item, hints[name], f"{key}.{name}") for name, item in value.items()])


def _is_kind(value: Any, hint: Any) -> bool:
    """Whether `value` is of `hint`'s outer kind (a list for list[X], a mapping for a dataclass), JSON's way: a
    bool is not a number, an integer is a float."""
    origin = typing.get_origin(hint) or hint
    if origin is typing.Annotated:
        return _is_kind(value, typing.get_args(hint)[0])
    if hint is None or hint is type(None):
        return value is None
    if origin in (int, float) and isinstance(value, bool):
        return False
    if origin is float:
        return isinstance(value, (int, float))
    if origin is dict or dataclasses.is_dataclass(hint) or typing.is_typeddict(hint):
        return isinstance(value, dict)
    return isinstance(value, origin)


def _not(value: Any, hint: Any, key: str) -> str:
    """`KEY is VALUE, not WHAT` for a value of the wrong type; long values cut short."""
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
    return f"{key} is {shown}, not {_kind_name(hint)}"


def _kind_name(hint: Any) -> str:
    origin = typing.get_origin(hint) or hint
    if origin is typing.Annotated:
        return _kind_name(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_kind_name(arg) for arg in typing.get_args(hint)))  # once: two mappings
    names = {type(None): "null", None: "null", bool: "true or false", int: "an integer", float: "a number",
             str: "a string", list: "a list"}
    return names.get(origin, "a mapping")


def from_dict(cls: type[C], data: dict[str, Any], prefix: str = "", base: C | None = None,
              merge_mappings: bool = False) -> C:
    """Build `cls` from a (possibly partial) nested dict; missing keys keep the values of `base` or the defaults.

    A free-form mapping (a model's `args`) replaces the base's whole: a saved run's config is complete, and keys the
    recipe's defaults gained since must not change the model it rebuilds. With `merge_mappings` (a user's --config
    file) its entries go into the base's one by one instead, as `model.args.width=32` on the command line does,
    unless the section also names another `name` (another model), whose options the base's would not fit."""
    config = base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    renamed = "name" in data and data["name"] != getattr(config, "name", None)
    if merge_mappings and renamed:  # another model: the base's options (its `args`) were its old model's
        for entry in dataclasses.fields(cls):
            if typing.get_origin(hints[entry.name]) is dict and entry.name not in data:
                setattr(config, entry.name, {})
    names = [f.name for f in dataclasses.fields(cls)]
    for name, value in data.items():
        if name not in names:
            raise _unknown_key(prefix + str(name), names)
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
            value = from_dict(annotation, value, prefix=f"{prefix}{name}.", base=getattr(config, name),
                              merge_mappings=merge_mappings)
        else:
            value = coerce(value, annotation, prefix + name)
            if merge_mappings and not renamed and isinstance(value, dict):
                value = {**(getattr(config, name) or {}), **value}
        setattr(config, name, value)
    return config


def has_key(config: Any, dotted: str) -> bool:
    """Whether `dotted` names a key of `config`; any entry of a free-form mapping (a model's `args`) counts."""
    target = config
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(target):
            return isinstance(target, dict)
        if part not in {entry.name for entry in dataclasses.fields(target)}:
            return False
        target = getattr(target, part)
    return True


def set_key(config: Any, dotted: str, text: str) -> None:
    """Set one dotted key from its command-line text, converting it to the field's type."""
    parts = dotted.split(".")
    target = config
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(target)]
        if part not in names:
            raise _unknown_key(".".join(parts[: depth + 1]), names)
        annotation = typing.get_type_hints(type(target))[part]
        if depth == len(parts) - 1:
            setattr(target, part, coerce(text, annotation, dotted))
            return
        if typing.get_origin(annotation) is dict:
            # Free-form options (e.g. a model's keyword arguments): the rest of the key names an entry, and the
            # value is read as YAML; whoever consumes the options checks them.
            mapping = getattr(target, part)
            for inner_depth in range(depth + 1, len(parts) - 1):
                mapping = mapping.setdefault(parts[inner_depth], {})
                if not isinstance(mapping, dict):  # model.args.width.x=1 where width is a number
                    raise UserError(f"'{'.'.join(parts[: inner_depth + 1])}' is a value, not a section")
            mapping[parts[-1]] = _yaml_scalar(text)
            return
        target = getattr(target, part)
        if not dataclasses.is_dataclass(target):
            raise UserError(f"'{'.'.join(parts[: depth + 1])}' is a value, not a section")


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(items: typing.Iterable[str]) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings as (key, value) pairs."""
    if isinstance(items, (str, dict)):  # from Python: a lone string would be read a character at a time
        raise TypeError(f"overrides are a list of KEY=VALUE strings, e.g. ['trainer.epochs=2'], not {items!r}")
    pairs = []
    for item in items:
        if not isinstance(item, str):  # `dlzoo.train("digits", {"trainer.epochs": 2})` failed on str.partition
            hint = ", a dict's as *(f'{k}={v}' for k, v in d.items())" if isinstance(item, dict) else ""
            raise TypeError(f"each override is one KEY=VALUE string, e.g. 'trainer.epochs=2'{hint}; "
                            f"not {type(item).__name__} {item!r}")
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"expected KEY=VALUE, got '{item}'")
        pairs.append((key.strip(), value.strip()))
    return pairs


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error: PyYAML keeps the last silently, so an
    edit lower in a config file would quietly undo one above it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`, which SafeLoader merges below
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader's own check below refuses it
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


# A config is a few kilobytes: reading stops past this, so that /dev/zero or a data file given by mistake is refused
# rather than read into memory whole (or forever).
MAX_CONFIG_BYTES = 1 << 20


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise UserError(f"config file {path} is over {MAX_CONFIG_BYTES >> 20} MiB: not a config")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader, refusing repeated keys
    except yaml.YAMLError as error:
        raise UserError(f"config file {path} is not valid YAML: {one_line(str(error))}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return data


def check_seed(seed: int, key: str) -> int:
    """A seed numpy takes, [0, 2^32), as every seed of a run (the engine derives others from `trainer.seed`)."""
    if not 0 <= seed < 2**32:
        raise UserError(f"{key} must be in [0, 2^32), got {seed}")
    return seed


# The most images one `dlzoo generate` or GET /generate draws (a grid of 10,000 is 3,002 pixels square): set here, where
# the command line's help reads it without importing torch.
MAX_IMAGES = 10_000

# More CPU threads than any machine has: torch overflows on 2^32, and runs out of memory long before.
MAX_THREADS = 4096


def validate(config: RecipeConfig) -> None:
    """Checks that span fields or need a range; recipes may add their own in their task."""
    t, o, d = config.trainer, config.optim, config.data
    for key, value, low in (
        ("trainer.epochs", t.epochs, 1),
        ("trainer.eval_every", t.eval_every, 1),
        ("trainer.checkpoint_every", t.checkpoint_every, 1),
        ("trainer.keep_checkpoints", t.keep_checkpoints, 1),
        ("data.batch_size", d.batch_size, 1),
        ("data.eval_batch_size", d.eval_batch_size, 1),
    ):
        if value < low:
            raise UserError(f"{key} must be >= {low}, got {value}")
    if d.limit is not None and d.limit < 1:
        raise UserError(f"data.limit must be a positive number of samples, got {d.limit}")
    if not (math.isfinite(o.lr) and o.lr > 0):
        raise UserError(f"optim.lr must be a positive number, got {o.lr}")
    for key, value in (("optim.momentum", o.momentum), ("optim.beta1", o.beta1), ("optim.beta2", o.beta2)):
        if not 0 <= value < 1:
            raise UserError(f"{key} must be in [0, 1), got {value}")
    if not (math.isfinite(o.weight_decay) and o.weight_decay >= 0):
        raise UserError(f"optim.weight_decay must be a finite number >= 0, got {o.weight_decay}")
    if not (math.isfinite(o.gamma) and o.gamma > 0):
        raise UserError(f"optim.gamma must be a positive number, got {o.gamma}")
    if o.step_epochs < 1:
        raise UserError(f"optim.step_epochs must be >= 1, got {o.step_epochs}")
    if not 0 <= o.warmup < 1:
        raise UserError(f"optim.warmup is a fraction of training in [0, 1), got {o.warmup}")
    if t.threads is not None and not 1 <= t.threads <= MAX_THREADS:
        raise UserError(f"trainer.threads must be between 1 and {MAX_THREADS}, got {t.threads}")
    if not t.log_every_s >= 0:
        raise UserError(f"trainer.log_every_s must be >= 0 seconds, got {t.log_every_s}")
    if t.grad_clip is not None and not t.grad_clip > 0:  # nan too, in a config built in Python
        raise UserError(f"trainer.grad_clip must be positive, got {t.grad_clip}")
