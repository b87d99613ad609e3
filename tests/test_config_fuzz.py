"""Every setting of every section, fed a wrong type, a non-finite or an out-of-range value, is refused
with one InputError naming the key (never another exception)."""
from __future__ import annotations

import dataclasses

import pytest

from pinsage import InputError, PinSageConfig
from pinsage.config import CHOICES

WRONG = ["text", None, [1, 2, 3], {"a": 1}, float("nan"), float("inf"), -1e300, 1e300, True, -5, 0]


def _keys():
    cfg = PinSageConfig()
    for section in ("model", "sampler", "train"):
        for f in dataclasses.fields(getattr(cfg, section)):
            yield section, f.name


@pytest.mark.parametrize("section,key", list(_keys()))
def test_every_key_refuses_bad_values_by_name(section, key):
    default = getattr(getattr(PinSageConfig(), section), key)
    refused = 0
    for value in WRONG:
        try:
            cfg = PinSageConfig.from_dict({section: {key: value}})
        except InputError as exc:
            assert f"{section}.{key}" in str(exc), (value, str(exc))
            refused += 1
            continue
        # accepted: then it must be a valid value of the right type
        got = getattr(getattr(cfg, section), key)
        assert type(got) is type(default), (value, got)
        if key in CHOICES:
            assert got in CHOICES[key]
    assert refused >= 5, (section, key, refused)


@pytest.mark.parametrize("key,value", [("hard_rank_max", [0, 0]), ("hard_rank_max", [5000, 2000]),
                                       ("weight_decay", -0.1), ("final_lr_ratio", 2.0), ("warmup_steps", -1),
                                       ("hard_rank_min", [50, 10]), ("clip_norm", -1.0)])
def test_the_issue_examples(key, value):
    with pytest.raises(InputError, match=f"train.{key}"):
        PinSageConfig.from_dict({"train": {key: value}})


def test_a_model_with_nothing_to_embed_is_refused():
    import pandas as pd

    from pinsage import PinSageEmbedder

    cfg = PinSageConfig().override(model__id_dim=0, model__spectral_dim=0, model__log_degree=False,
                                   train__epochs=1)
    df = pd.DataFrame({"u": [0, 0, 1, 1], "i": [1, 2, 2, 3]})
    with pytest.raises(InputError, match="model.id_dim"):
        PinSageEmbedder(cfg, progress=False).fit(df, group_col="u", item_col="i")
