"""Nearest-neighbour index over item embeddings, for related-item lookups (faiss-cpu).

:class:`ItemIndex` wraps a faiss index together with the items' original ids, so callers ask for
related items by id and get ids back::

    index = ItemIndex.build(embeddings, ids)            # embeddings: (n, d) float, ids: (n,)
    ids_out, scores = index.related(["pin-1", "pin-7"], k=10)   # (2, 10) ids, (2, 10) float32
    ids_out, scores = index.recommend(["pin-3", "pin-1"], N=10)  # a history, oldest first: (10,)
    index = ItemIndex.build(embeddings, ids, kind="IVF1024,PQ16", nprobe=16)   # a faiss factory string
    index.save("out/index");  index = ItemIndex.load("out/index")

Modules, one job each:

* :mod:`pinsage.index.factory`: the index kinds (``"auto"``, ``"exact"``, ``"hnsw"``, ``"ivfpq"`` and
  faiss factory strings), their parameters and defaults, building them, faiss's thread count;
* :mod:`pinsage.index.idmap`: original ids <-> index rows, and how ids are saved;
* :mod:`pinsage.index.exclusions`: leaving the query item and ``exclude`` ids out of ``related()``;
* :mod:`pinsage.index.histories`: a batch of item histories as rows, recency weights and means;
* :mod:`pinsage.index.interests`: PinnerSage-style clusters of a history, their medoids and quotas;
* :mod:`pinsage.index.recommend`: scoring histories (``recommend()``): recency mean or merged interests;
* :mod:`pinsage.index.item_index`: :class:`ItemIndex`, which composes them, and saving / loading.

The user guide (``docs/guide.md``, "Related items and the index") shows them in use;
``docs/benchmarks/index.md`` compares the kinds.
"""
from pinsage.index.factory import AUTO_EXACT_MAX, KINDS, METRICS, NAMED_KINDS, set_num_threads
from pinsage.index.item_index import FORMAT_VERSION, IDS_FILE, INDEX_FILE, META_FILE, ItemIndex

__all__ = ["ItemIndex", "set_num_threads", "FORMAT_VERSION", "AUTO_EXACT_MAX", "KINDS", "NAMED_KINDS", "METRICS",
           "INDEX_FILE", "IDS_FILE", "META_FILE"]
