"""MovieLens-100K end to end: ``python examples/movielens.py --data PATH/ml-100k [--epochs N]``.

Reads ``u.data`` (ratings) and ``u.item`` (titles, year, genres), trains PinSage with the default
configuration (users as the groups, movies as the items, genres and year as item features, the
rating timestamps ordering each user's history), builds an item index and prints the movies most
related to a few well-known ones, looked up by title.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

QUERIES = ["Star Wars (1977)", "Toy Story (1995)", "Fargo (1996)", "Pulp Fiction (1994)",
           "Godfather, The (1972)", "Scream (1996)"]


def find_title(items: pd.DataFrame, name: str) -> int | None:
    """The item id of the movie titled ``name`` (exact, else case-insensitive prefix match)."""
    titles = items["title"].str.strip()
    hit = items[titles == name]
    if hit.empty:
        hit = items[titles.str.lower().str.startswith(name.lower())]
    return None if hit.empty else int(hit["item_id"].iloc[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the ml-100k directory (with u.data and u.item)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--pairs-per-epoch", type=int, default=None,
                    help="override train.pairs_per_epoch (a short smoke run)")
    ap.add_argument("--k", type=int, default=10, help="related movies per query")
    ap.add_argument("--query", action="append", default=None, help="a movie title to query (repeatable)")
    args = ap.parse_args(argv)

    from pinsage._io import InputError
    from pinsage.config import PinSageConfig
    from pinsage.datasets import read_ml100k, read_ml100k_items
    from pinsage.estimator import PinSageEmbedder
    from pinsage.index import ItemIndex

    data = Path(args.data)
    if not (data / "u.data").is_file():
        print(f"error: {data} has no u.data; pass --data the MovieLens-100K directory "
              f"(unpacked ml-100k.zip from https://grouplens.org/datasets/movielens/100k/)", file=sys.stderr)
        return 2
    try:
        ratings = read_ml100k(data)
        items = read_ml100k_items(data)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"MovieLens-100K: {len(ratings)} ratings, {ratings.user_id.nunique()} users, "
          f"{ratings.item_id.nunique()} movies")

    cfg = PinSageConfig()
    if args.epochs is not None:
        cfg = cfg.override(train__epochs=args.epochs)
    if args.pairs_per_epoch is not None:
        cfg = cfg.override(train__pairs_per_epoch=args.pairs_per_epoch)
    feats = items[items["item_id"].isin(ratings["item_id"].unique())][["item_id", "genres", "year"]].copy()
    feats["year"] = feats["year"].astype("float64").fillna(feats["year"].astype("float64").median())

    t0 = time.perf_counter()
    model = PinSageEmbedder(cfg, device="cuda" if _cuda() else "cpu").fit(
        ratings, group_col="user_id", item_col="item_id", time_col="timestamp",
        item_features=feats, item_key="item_id")
    print(f"trained {cfg.train.epochs} epochs in {time.perf_counter() - t0:.0f} s; "
          f"embeddings {model.item_embeddings_.shape}")
    index = ItemIndex.build(model.item_embeddings_, model.item_ids_, kind="exact")
    title = items.set_index("item_id")["title"]
    genres = items.set_index("item_id")["genres"]

    for name in args.query or QUERIES:
        item = find_title(items, name)
        if item is None or item not in set(np.asarray(model.item_ids_).tolist()):
            print(f"\n{name}: not found")
            continue
        ids, scores = index.related(item, k=args.k)
        print(f"\nrelated to {title[item]}  [{genres[item]}]")
        for r, (i, s) in enumerate(zip(ids, scores), 1):
            print(f"  {r:>2}. {title[int(i)]:<45} {s:.3f}  [{genres[int(i)]}]")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
