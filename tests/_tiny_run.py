"""A tiny run directory written in a fraction of a second, without training (for the serving and
recommendation tests): the pin-board graph with times, the pins' content features as embeddings
(topic-clustered), titles, a config and checksums, laid out by :class:`pinsage.run.RunDir`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pinsage.config import PinSageConfig
from pinsage.datasets import make_pinboard, pinboard_features_frame
from pinsage.graph import InteractionGraph
from pinsage.run import RunDir


def write_tiny_run(path: Path, seed: int = 0, pins_per_topic: int = 30, time: bool = True) -> dict:
    """Write a run into ``path`` (created); returns its parts for the tests to compare against."""
    data = make_pinboard(n_topics=4, pins_per_topic=pins_per_topic, n_boards=150, seed=seed)
    inter = data.interactions
    graph = InteractionGraph.from_pandas(inter, "board", "pin", time_col="time" if time else None)
    feats = pinboard_features_frame(data)
    cols = [c for c in feats.columns if c.startswith("f")]
    by_pin = feats.set_index("pin")
    ids = np.asarray(graph.item_ids).astype(str)
    emb = by_pin.loc[ids, cols].to_numpy(np.float32) / 8.0
    path.mkdir(parents=True)
    run = RunDir(path)
    run.write_embeddings(emb, ids)
    run.write_graph(graph)
    run.write_config(PinSageConfig().override(train__seed=seed))
    src = path.parent / f".{path.name}-features.csv"
    feats[["pin", "title"]].to_csv(src, index=False)
    rel = run.copy_input(src, "item_features")
    src.unlink()
    run.write_meta({"num_items": len(ids), "num_graph_items": graph.num_items, "num_groups": graph.num_groups,
                    "item_features": rel, "item_key": "pin"})
    run.record_checksums()
    topic = pd.Series(data.topics, index=data.pins["pin"].to_numpy())
    return {"path": path, "ids": ids, "emb": emb, "graph": graph, "topic": topic.loc[ids].to_numpy(),
            "titles": by_pin.loc[ids, "title"].to_numpy(), "interactions": inter}
