"""docs/plugins.md documents every hook spec with its exact signature, and its examples run."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from spl_sdk import hookspecs
from spl_sdk.components import KIND_BASES
from spl_sdk.plugins import HOOK_OF_KIND, Plugins

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
SPECS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, f"{hookspecs.PROJECT}_spec")}


def signature_text(fn: types.FunctionType) -> str:
    """``name(arg: Type, ...) -> Ret`` as written in the source (string annotations unquoted)."""
    def ann(a: object) -> str:
        return a if isinstance(a, str) else inspect.formatannotation(a)

    sig = inspect.signature(fn)
    params = ", ".join(p.name if p.annotation is p.empty else f"{p.name}: {ann(p.annotation)}"
                       for p in sig.parameters.values())
    ret = "" if sig.return_annotation is sig.empty else f" -> {ann(sig.return_annotation)}"
    return f"{fn.__name__}({params}){ret}"


def sections() -> dict[str, str]:
    """Hook reference sections: heading signature -> text up to the next heading."""
    parts = re.split(r"^### `([^`]+)`\s*$", DOC, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_there_are_seven_hook_specs() -> None:
    assert set(SPECS) == set(HOOK_OF_KIND.values())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    assert signature_text(SPECS[name]) in sections(), (
        f"docs/plugins.md needs a heading '### `{signature_text(SPECS[name])}`'")


def test_no_documented_hook_is_stale() -> None:
    documented = {re.match(r"\w+", heading).group(0) for heading in sections()}
    assert documented == set(SPECS)


@pytest.mark.parametrize("kind", sorted(HOOK_OF_KIND))
def test_each_section_names_the_methods_to_implement(kind: str) -> None:
    text = sections()[signature_text(SPECS[HOOK_OF_KIND[kind]])]
    base = KIND_BASES[kind]
    assert f"`{base.__name__}`" in text
    for method in sorted(base.__abstractmethods__):
        assert f"`{method}(" in text, f"{kind}: abstract method {method} is not described"


def test_environment_variables_and_example_package_are_described() -> None:
    for needle in ("SPL_LOAD_PLUGINS", "SPL_DISABLE_PLUGINS", "[project.entry-points.spl_sdk]",
                   "plugins/examples/spl-example-tv", "spl plugins"):
        assert needle in DOC


def _examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    return [b for b in blocks if "@hookimpl" in b and "class " in b]


@pytest.mark.parametrize("index", range(8))
def test_hook_examples_register_a_working_component(index: int) -> None:
    code = _examples()[index]
    module = types.ModuleType(f"doc_example_{index}")
    exec(compile(code, f"docs/plugins.md example {index}", "exec"), module.__dict__)
    plugins = Plugins(load_entrypoints=False)
    plugins.register(module, name=module.__name__)
    (row,) = plugins.listing()
    cls = plugins.get(row["kind"], row["name"])
    assert row["summary"] and not inspect.isabstract(cls)


def test_all_examples_are_tested() -> None:
    assert len(_examples()) == 8


def test_the_from_scratch_backbone_example_edits_a_photo() -> None:
    from PIL import Image

    from spl_sdk.config import EditConfig
    from spl_sdk.editor import Editor

    (code,) = [b for b in _examples() if "class PixelFlow" in b]
    module = types.ModuleType("doc_backbone")
    exec(compile(code, "docs/plugins.md backbone example", "exec"), module.__dict__)
    plugins = Plugins(load_entrypoints=True, env={})
    plugins.register(module, name="doc-backbone")
    editor = Editor.from_config(EditConfig(backbone="pixel-flow", iterations=2), plugins=plugins)
    result = editor.edit(Image.new("RGB", (96, 80), (200, 40, 40)), "a red card", "a bright red card")
    assert result.image.size == (96, 80)
    assert (result.config.working_size, result.config.method) == (64, "flowedit")  # its defaults


def _options_section() -> str:
    return DOC.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]


def test_options_worked_example_runs_as_documented() -> None:
    import torch
    import yaml

    from spl_sdk.config import EditConfig
    from spl_sdk.errors import ConfigError
    from spl_sdk.options import check_options, options_for

    section = _options_section()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "class " in b]
    module = types.ModuleType("doc_options_example")
    exec(compile(code, "docs/plugins.md options example", "exec"), module.__dict__)
    plugins = Plugins(load_entrypoints=False)
    module.spl_register_loss_terms = _register(module.EdgeLoss)
    plugins.register(module, name="doc-options")
    (config_yaml,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    cfg = EditConfig(**yaml.safe_load(config_yaml))
    options = options_for(plugins, "loss", "edge-l1", cfg.options)
    assert (options.step, options.power) == (2, 2.0)
    term = module.EdgeLoss(options=options)
    x, y = torch.rand(2, 1, 3, 8, 8) * 2 - 1
    assert float(term(x, x)) == 0.0 and float(term(x, y)) > 0
    # the error line quoted in the section is the real one
    quoted = re.search(r"`(invalid options for loss term 'edge-l1'.*?)`", section, flags=re.S).group(1)
    with pytest.raises(ConfigError) as info:
        check_options(plugins, {"edge-l1": {"step": 0}})
    assert str(info.value) == " ".join(quoted.split())


def _register(cls: type) -> types.FunctionType:
    from spl_sdk import hookimpl

    @hookimpl
    def spl_register_loss_terms(register):
        register(cls)

    return spl_register_loss_terms


def test_builtin_options_table_matches_the_components() -> None:
    plugins = Plugins(load_entrypoints=True, env={})
    section = _options_section()
    for kind, name in (("loss", "spl"), ("loss", "cpl"), ("mask-extractor", "cross-attention"), ("attention", "unified"),
                       ("harmonizer", "openai")):
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}`"))
        for field in plugins.get(kind, name).Options.model_fields:
            assert f"`{field}`" in row, (name, field)


@pytest.mark.parametrize("index", range(8))
def test_hook_examples_follow_the_contract_signatures(index: int) -> None:
    from spl_sdk.components import Component
    from spl_sdk.signatures import method_problem

    module = types.ModuleType(f"doc_signatures_{index}")
    exec(compile(_examples()[index], f"docs/plugins.md example {index}", "exec"), module.__dict__)
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Component)
               and c.__module__ == module.__name__]
    assert classes
    for cls in classes:
        base = next(b for b in KIND_BASES.values() if issubclass(cls, b))
        assert method_problem(cls, base) is None
        if "load" in vars(cls):  # a backbone's load takes every keyword of the contract, options= too
            ours = list(inspect.signature(cls.load).parameters)
            assert ours == list(inspect.signature(base.load).parameters), ours


def test_the_studio_keeps_one_plugin_manager_per_process_as_documented() -> None:
    from spl_apps import resources

    assert resources.plugins() is resources.plugins()  # cached: a new plug-in needs a restart
    assert "restart the studio" in DOC and "apps/resources.py" in DOC


def test_upgrading_lists_every_renamed_kind_and_component() -> None:
    from spl_sdk.renamed import OLD_KINDS, OLD_NAMES

    text = (Path(__file__).resolve().parents[1] / "docs" / "upgrading.md").read_text()
    for old, new in [*OLD_KINDS.items(), *((old, new) for (_, old), new in OLD_NAMES.items())]:
        assert f"`{old}`" in text and f"`{new}`" in text, (old, new)


# British spellings 0.2 replaced (one spelling family); the old names kept as aliases are allowed
BRITISH = re.compile(r"colour|optimis|neutralis|normalis|initialis|behaviour|recognis|summaris|centred|\bgrey\b",
                     re.IGNORECASE)
ALIAS_FILES = {"spl_sdk/optimiser.py", "docs/upgrading.md", "plugins/spl_losses/spl.py",
               "benchmarks/refine_history.py"}


def test_one_spelling_family_in_code_and_docs() -> None:
    root = Path(__file__).resolve().parents[1]
    files = [p for folder in ("spl_sdk", "plugins", "apps", "docs", "benchmarks", "spl_comfy")
             for p in (root / folder).rglob("*") if p.suffix in (".py", ".md")] + [root / "README.md"]
    found = [f"{p.relative_to(root)}:{n}: {line.strip()}" for p in files
             if p.relative_to(root).as_posix() not in ALIAS_FILES
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if BRITISH.search(line)]
    assert not found, "\n".join(found[:10])
