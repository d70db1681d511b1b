"""``${key}`` references in configs: a pure lookup in the merged config, after overrides."""

from __future__ import annotations

import pytest

from core.config import load_config, resolve_references
from core.errors import ConfigError


def test_whole_reference_keeps_the_type_and_inner_reference_interpolates():
    cfg = {"data": {"root": "/d", "classes": ["a", "b"], "size": 32},
           "train": {"dataset": {"root": "${data.root}/train", "classes": "${data.classes}",
                                 "size": "${data.size}", "name": "s${data.size}",
                                 "first": "${data.classes.0}", "literal": "$${data.root}"}}}
    dataset = resolve_references(cfg)["train"]["dataset"]
    assert dataset == {"root": "/d/train", "classes": ["a", "b"], "size": 32, "name": "s32",
                       "first": "a", "literal": "${data.root}"}
    assert cfg["train"]["dataset"]["root"] == "${data.root}/train"  # the input is untouched


def test_references_are_resolved_after_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "/a"\nclasses = ["x"]\n'
                    '[ds]\ndata_root = "${data.root}"\nclasses = "${data.classes}"\n')
    cfg = load_config(path, ["data.root=/b", 'data.classes=["p", "q"]'])
    assert cfg["ds"] == {"data_root": "/b", "classes": ["p", "q"]}


def test_chained_references_resolve():
    cfg = {"a": "${b}", "b": "${c}/x", "c": "root"}
    assert resolve_references(cfg) == {"a": "root/x", "b": "root/x", "c": "root"}


@pytest.mark.parametrize(("cfg", "message"), [
    ({"ds": {"root": "${data.rot}"}, "data": {"root": "/d"}},
     "ds.root: reference ${data.rot}: no key 'data.rot' in the config"),
    ({"a": "${b}", "b": "${a}"}, "reference cycle: a -> b -> a"),
    ({"a": {"b": "${a}"}}, "a.b: reference ${a} names a table holding it"),
    ({"a": "x/${t}", "t": {"k": 1}}, "a: reference ${t} inside a string must name a string or"),
])
def test_bad_references_name_the_referring_key(cfg, message):
    with pytest.raises(ConfigError) as info:
        resolve_references(cfg)
    assert message in str(info.value)
