"""Validated run configuration (pydantic); defaults are docs/method.md section 7.

Every field carries a description and its range: the CLI help and the app's
controls are built from them, so there is no second copy of a default.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spl_sdk.aliases import ALIASES, apply_aliases
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import ConfigError
from spl_sdk.rawoptions import check_shape, merge_options
from spl_sdk.renamed import current_name
from spl_sdk.text import shown
from spl_sdk.words import comma_words

Area = Literal["whole", "masked"]
DEFAULT_POST_PROCESSOR = "loss-refine"  # full-resolution optimization with the edit's loss terms
# files read by --config as a result image's embedded configuration
RESULT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
MAX_WEIGHT = 1e8  # loss weights above this overflow float32 losses (and no use needs them)


class _Base(ComponentOptions):
    """The pipeline configurations share the options' strictness: unknown fields, inf/nan
    (also 'Infinity' in a JSON file) and booleans where numbers belong are refused by name."""


class RefineConfig(_Base):
    """Loss terms and optimizer: all that ``spl refine`` needs, shared by the editor."""

    structure_loss: str | None = Field(
        "spl", description="Loss term that keeps the source's edges (any installed loss term; none turns it off).")
    structure_weight: float | None = Field(
        None, ge=0, le=MAX_WEIGHT, description="Weight of the structure loss; unset: the loss's default_weight (spl: 10000).")
    structure_area: Area = Field("whole", description="Where the structure loss applies: whole image or masked area.")
    color_loss: str | None = Field(
        None, description="Loss term that keeps the source's colors (e.g. cpl); off by default.")
    color_weight: float | None = Field(
        None, ge=0, le=MAX_WEIGHT, description="Weight of the color loss (sensible range 100 to 10000); unset: the loss's "
                                "default_weight (cpl: 1000).")
    color_area: Area = Field("whole", description="Where the color loss applies: whole image or masked area.")
    iterations: int = Field(100, ge=1, le=10000, description="Image-space optimization iterations per optimization.")
    solver: Literal["fast", "reference", "pyramid"] = Field(
        "fast", description="Image-space solver: 'fast' (closed-form gradients, steps alike at any size, "
                            "keeps the edit's local light), 'reference' (the paper's optimizer exactly: SGD lr 1, "
                            "momentum 0.9, NaN gradients zeroed, one clamp to [-1, 1] after the last step) or "
                            "'pyramid' (spl-sdk 0.1's fast solver, so its results replay).")
    mask_file: Path | None = Field(None, description="Mask image restricting 'masked' losses (white = inside).")
    align: Literal["auto", "affine", "flow", "raft", "off"] = Field(
        "auto", description="Register the edit onto the source first (docs/align.md): 'auto' applies only "
                            "the steps that improve the match (an aligned edit is left as it is), "
                            "'affine' a global warp, 'flow' a global warp and a smooth residual, 'raft' "
                            "that residual from torchvision's RAFT (downloads its weights once), 'off' none.")
    post_processors: list[str] = Field(
        default_factory=list, description="Post-processor plug-ins run after the refinement, in this order "
                                          "(comma-separated; none by default).")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options of components by NAME (or KIND/NAME), e.g. {\"spl\": {\"radius\": 3}}; "
                    "'spl plugins NAME' lists a component's options.")

    @field_validator("options", mode="before")
    @classmethod
    def _option_texts(cls, value: Any) -> Any:
        # {NAME: {FIELD: VALUE}}, or a list of "NAME.FIELD=VALUE" texts as the CLI takes them
        try:
            return check_shape(value)
        except ConfigError as exc:
            raise ValueError(str(exc).rstrip(".")) from None

    @field_validator("structure_loss", "color_loss", mode="before")
    @classmethod
    def _none_word(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "off") else value

    @field_validator("post_processors", mode="before")
    @classmethod
    def _comma_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [w.strip() for w in value.split(",") if w.strip()]
        return value


# What ``--profile paper`` sets when the user gives no value (docs/method.md section 10): the
# paper's optimizer and the paper's only working size (it center-crops to 512 x 512).
PAPER_DEFAULTS: dict[str, Any] = {"solver": "reference", "working_size": 512}
# Of those, the values a paper run refuses: they would change its output, not just a parameter.
PAPER_REQUIRED: dict[str, Any] = {"solver": "reference"}
# What the default profile fills in the plan when the user gives no value.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {"default": {"solver": "fast"}, "paper": PAPER_DEFAULTS}


class EditConfig(RefineConfig):
    """Everything a text-driven edit takes (docs/method.md sections 2, 4, 5 and 7).

    Only what every edit has: a setting of one particular component is that component's
    option. A field whose value a component or the profile chooses (method, working_size,
    steps, guidance, solver) is None until the edit's plan fills it, and the filled value
    is what a result records (:mod:`spl_sdk.plan`).
    """

    profile: Literal["default", "paper"] = Field(
        "default", description="'paper' reproduces the paper's code on the same weights and seed (reference "
                               "solver, sampled VAE latents, its random stream and token alignment); 'default' "
                               "keeps spl-sdk's choices. Explicit settings win, except a --solver that "
                               "breaks reproduction (docs/method.md section 10).")
    backbone: str = Field("lcm-dreamshaper-v7", description="Backbone plug-in (model family).")
    model: str | None = Field(None, description="Hub id or local folder of the weights; the backbone's default if unset.")
    device: str = Field("auto", description="Torch device: auto, cpu, cuda, cuda:N or mps.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Model dtype; auto is float16 on CUDA and float32 elsewhere.")
    cpu_offload: bool = Field(False, description="Offload idle model parts to the CPU (small GPUs; needs accelerate).")
    method: str | None = Field(None, description="Edit-method plug-in (e.g. infedit); the backbone's default if unset.")
    working_size: int | None = Field(
        None, ge=64, le=2048, multiple_of=8,
        description="Long side in pixels at which the diffusion runs (multiple of 8); the backbone's default if unset.")
    steps: int | None = Field(None, ge=1, le=200, description="Number of inference steps; unset: the method's default (infedit 15, flowedit per model family).")
    source_guidance: float | None = Field(None, ge=0, le=30, description="Guidance scale of the source (and mutual) branch; unset: the method's default (infedit 1, flowedit per model family).")
    target_guidance: float | None = Field(None, ge=0, le=30, description="Guidance scale of the target branch; unset: the method's default (infedit 2, flowedit per model family).")
    solver: Literal["fast", "reference", "pyramid"] | None = Field(
        None, description="Image-space solver: 'fast' (closed-form gradients, steps alike at any size, "
                          "keeps the edit's local light), 'reference' (the paper's optimizer exactly: SGD lr 1, "
                          "momentum 0.9, NaN gradients zeroed, one clamp to [-1, 1] after the last step) or "
                          "'pyramid' (spl-sdk 0.1's fast solver, so its results replay); "
                          "unset: the profile's (fast; paper: reference).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed of the initial noise and per-step noise.")
    attention: str = Field("unified", description="Attention-controller plug-in (for methods that drive one).")
    opt_start: float = Field(0.8, ge=0, le=1,
                             description="Fraction of steps after which losses are injected (1 turns injection off).")
    post_process: bool = Field(True, description="Optimize the final image against the original source at full size.")
    align: Literal["auto", "affine", "flow", "raft", "off"] | None = Field(
        None, description="Register the decoded edit onto the source before post-processing, for edit "
                           "methods whose output can drift (docs/align.md); unset: the method's (instruct: "
                           "auto; others off).")
    post_processors: list[str] = Field(
        default_factory=lambda: [DEFAULT_POST_PROCESSOR],
        description="Post-processor plug-ins run in this order at full size (comma-separated); "
                    "'loss-refine' stays unless the list leaves it out.")
    mask_extractor: str = Field("cross-attention", description="Mask-extractor plug-in used for 'masked' losses.")
    edit_area: Area = Field(
        "whole", description="Where the edit applies: whole image, or only the masked area (--mask FILE, "
                             "a drawn mask or mask words); outside it the result keeps the photo's pixels "
                             "exactly.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        # settings of particular plug-ins under their old top-level names become their options
        if not isinstance(data, dict):
            return data
        for name in ("backbone", "attention"):  # components 0.2.0 renamed (spl_sdk.renamed)
            if isinstance(data.get(name), str):
                data = {**data, name: current_name(name, data[name])}
        defaults = {name: cls.model_fields[name].default for name in ("attention", "mask_extractor", "backbone")}
        try:
            data = apply_aliases(data, defaults)
        except ConfigError as exc:
            raise ValueError(str(exc).rstrip(".")) from None
        if "post_processor" not in data:
            return data
        # deprecated single post_processor: it used to replace loss-refine; now it runs after it
        name = data.pop("post_processor")
        if name and name != DEFAULT_POST_PROCESSOR:
            warnings.warn(f"post_processor is deprecated; use post_processors (a list): '{name}' now "
                          f"runs after '{DEFAULT_POST_PROCESSOR}', which stays unless the list leaves it "
                          f"out.", FutureWarning, stacklevel=2)
            given = data.get("post_processors") or [DEFAULT_POST_PROCESSOR]
            given = [w.strip() for w in given.split(",")] if isinstance(given, str) else list(given)
            data["post_processors"] = given + [name] * (name not in given)
        return data

    @field_validator("post_processors", mode="before")
    @classmethod
    def _comma_words(cls, value: Any) -> Any:
        return comma_words(value)

    @model_validator(mode="after")
    def _check_profile(self) -> EditConfig:
        # the profile fills what the user left unset (in the plan); a value it needs is refused here
        if self.profile != "paper":
            return self
        for name, value in PAPER_REQUIRED.items():
            if getattr(self, name) is not None and getattr(self, name) != value:
                raise ValueError(f"profile 'paper' reproduces the paper's code and needs {name} "
                                 f"{value!r}, not {getattr(self, name)!r}; drop the {name} setting "
                                 f"or use profile 'default'")
        return self

    def profile_defaults(self) -> dict[str, Any]:
        """The values this profile gives the fields left None (the plan fills them)."""
        return PROFILE_DEFAULTS[self.profile]

    @property
    def needs_mask(self) -> bool:
        """True when a loss is restricted to the masked area."""
        return (self.structure_loss is not None and self.structure_area == "masked") or (
            self.color_loss is not None and self.color_area == "masked")

    @property
    def needs_region(self) -> bool:
        """True when the edit needs a mask: a masked loss, or an edit confined to the masked area."""
        return self.needs_mask or self.edit_area == "masked"


Cfg = TypeVar("Cfg", bound=BaseModel)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON, YAML or TOML config file into a dict."""
    from spl_sdk.parsing import loads, read_text

    path = Path(path)
    if path.suffix.lower() in RESULT_SUFFIXES:
        return config_of_result(path)
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"config file '{path}' must end in .json, .yaml, .yml or .toml, or be "
                          f"a PNG result written by spl-sdk.")
    # UTF-8, nesting depth and YAML alias expansion are checked before any validation
    data = loads(read_text(path, f"config file '{path}'"), fmt, f"config file '{path}'")
    if fmt == "yaml" and data is None:  # an empty YAML file
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of field names to values.")
    return data


def result_metadata(path: str | Path) -> dict[str, Any]:
    """The run metadata embedded in a result image written by spl-sdk (one clear error if none)."""
    from spl_sdk.imageio import read_metadata

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cannot read config file '{path}' (no such file); check the path.")
    meta = read_metadata(path)
    if not meta or not isinstance(meta.get("config"), dict):
        raise ConfigError(f"'{path}' carries no spl-sdk configuration; pass a PNG result written by "
                          f"'spl edit', 'spl refine' or the studio, or a JSON, YAML or TOML file.")
    return meta


# Releases whose "fast" solver was today's "pyramid" (spl_sdk.pyramid): their results replay with it.
PYRAMID_RELEASES = frozenset({"0.1.0"})


def config_of_result(path: str | Path) -> dict[str, Any]:
    """The configuration a result image was made with, so the run can be repeated (same pixels)."""
    meta = result_metadata(path)
    config = dict(meta["config"])
    if meta.get("spl_sdk") in PYRAMID_RELEASES and config.get("solver") == "fast":
        config["solver"] = "pyramid"
    return config


def allowed_range(cls: type[BaseModel], name: str) -> str | None:
    """A field's numeric bounds as text ('0 to 1', '>= 0'), or None when it has none."""
    from spl_sdk.components.base import field_range

    field = cls.model_fields.get(name)
    return None if field is None else field_range(field)


def describe_validation_error(exc: ValidationError, source: str = "config",
                              cls: type[BaseModel] | None = None) -> str:
    """One sentence per invalid field: its name, what was wrong and the allowed range."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        if not field:  # a rule across fields: its message names them
            parts.append(str(err["msg"]).removeprefix("Value error, "))
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown field '{field}' in {source}")
        else:
            allowed = allowed_range(cls, field) if cls is not None else None
            message = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"'{field}' = {shown(err.get('input'))}: {message[:1].lower() + message[1:]}"
                         + (f" (allowed: {allowed})" if allowed else ""))
    return "invalid configuration: " + "; ".join(parts) + "."


def build_config(cls: type[Cfg], file: str | Path | None = None, **overrides: Any) -> Cfg:
    """Config from an optional file with keyword overrides (None values are ignored)."""
    data: dict[str, Any] = read_config_file(file) if file else {}
    if file:
        data = _field_keys(data, file)
        # drop the fields of a wider file (an edit config read by refine)
        known = set(cls.model_fields) | (OLD_KEYS if issubclass(cls, EditConfig) else set())
        data = {k: v for k, v in data.items() if k in known}
    given = {k: v for k, v in overrides.items() if v is not None}
    if file and given.keys() & data.keys():
        _check_file_values(cls, data, file)  # a bad value stays an error when a flag overrides it
    if "options" in given and "options" in data:  # --option flags refine the file's options
        given["options"] = merge_options(data["options"], given["options"])
    data.update(given)
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(file) if file else "options", cls)) from None


def _check_file_values(cls: type[BaseModel], data: dict[str, Any], file: str | Path) -> None:
    """Refuse a file value that is wrong on its own (rules across fields wait for the flags)."""
    try:
        with warnings.catch_warnings():  # deprecation notes come once, from the real validation
            warnings.simplefilter("ignore")
            cls(**data)
    except ValidationError as exc:
        if any(err["loc"] for err in exc.errors()):
            raise ConfigError(f"{file}: {describe_validation_error(exc, str(file), cls)}") from None


# keys a configuration file may hold: every field, and names kept for old files
OLD_KEYS = frozenset(ALIASES) | {"post_processor"}
FILE_KEYS = frozenset(EditConfig.model_fields) | OLD_KEYS


def _field_keys(data: dict[str, Any], file: str | Path) -> dict[str, Any]:
    """File keys as field names: the flag spelling (kebab-case) is accepted; a typo is named."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FILE_KEYS:
            spellings = sorted(FILE_KEYS | {k.replace("_", "-") for k in FILE_KEYS})
            close = difflib.get_close_matches(str(key), spellings, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else \
                "; see 'spl edit --help' for the fields (snake_case or the flags' kebab-case)."
            raise ConfigError(f"{file}: unknown key '{key}'{hint}")
        out[name] = value
    return out


def field_help(cls: type[BaseModel], name: str) -> str:
    """Description of a field with its default, for CLI help and app tooltips."""
    f = cls.model_fields[name]
    return f"{f.description} [default: {f.get_default(call_default_factory=True)!r}]"
