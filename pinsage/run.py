"""The run directory: the one module that knows its file names, writes them and reads them back.

``pinsage train --out DIR`` (through :meth:`pinsage.PinSageEmbedder.save`) writes, and every command
that reads a run (``embed``, ``index``, ``related``, ``evaluate``) opens, a :class:`RunDir`:

==========================  ===============================================================
file                        content
==========================  ===============================================================
``item_embeddings.npy``     float32 ``(n_items, d)``, the final embeddings (the contract)
``item_ids.npy``            the items' original ids in row order (numbers, or fixed-width strings)
``config.yaml``             every setting of the run (:class:`pinsage.PinSageConfig`)
``model.pt``                ``{"state_dict": tensors, "kwargs": PinSage.get_config()}``
``run.json``                metadata: counts, columns, input paths and checksums, versions, timings
``README.md``               the model card (:mod:`pinsage.card`): sizes, settings, inputs, evaluation
``graph/``                  the training graph (:meth:`pinsage.InteractionGraph.save`; several relations:
                            :meth:`pinsage.graph.HeteroGraph.save`, with ``graph/hetero.json``)
``neighborhoods.npz``       the importance neighbourhoods used for the final embeddings (per relation
                            with ``sampler.merge_relations: false``)
``item_features.npy``       the node inputs (content | spectral | log degree), when any
``feature_encoder.json``    the fitted content encoder, when the run had item features
``train_log.jsonl``         one JSON line per logged step and epoch
``checkpoint.pt``           the last epoch's training state (for ``--resume``)
``index/``                  a saved :class:`pinsage.ItemIndex` (``pinsage index``)
``inputs/``                 a copy of the ``--item-features`` file (``pinsage embed``'s default, titles)
==========================  ===============================================================

Nothing here unpickles: arrays load with ``allow_pickle=False``, ``model.pt`` with
``torch.load(weights_only=True)``, everything else is JSON or YAML. Every write goes through a
temporary file and a rename. ``run.json`` records the SHA-256 of every other file of the run but
the model card ``README.md`` (:data:`UNCHECKED`: a human-readable summary, re-rendered when an
evaluation is recorded and read by no command) (:meth:`RunDir.record_checksums`); each reader verifies the files it is about to parse and names a
damaged one before numpy, torch or faiss reads it. The only paths ``run.json`` records that a command
opens are relative paths inside the run (:func:`resolve_recorded_path`); the input paths it lists for
the record (``interactions``, ``item_features_source``) are never opened. Format notes: ``docs/cli.md``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from pinsage._io import InputError, atomic_path, read_table, save_npy_atomic, sha256_file, sniff_suffix
from pinsage.config import PinSageConfig
from pinsage.ids import lookup_keys

__all__ = ["RunDir", "FILES", "UNCHECKED", "resolve_recorded_path", "savable_ids"]

log = logging.getLogger(__name__)

#: the file names of a run directory, by role
FILES = {
    "embeddings": "item_embeddings.npy", "ids": "item_ids.npy", "config": "config.yaml", "model": "model.pt",
    "meta": "run.json", "graph": "graph", "neighborhoods": "neighborhoods.npz", "features": "item_features.npy",
    "encoder": "feature_encoder.json", "log": "train_log.jsonl", "checkpoint": "checkpoint.pt", "index": "index",
    "inputs": "inputs", "card": "README.md",
}
#: files of a run that run.json's checksums leave out: the model card is a summary for people, rewritten
#: when an evaluation is recorded (``pinsage evaluate --record``) and parsed by no command
UNCHECKED = (FILES["card"],)
#: ``RunDir.index(warn_to=...)``'s default: report a stale index through the ``pinsage.run`` logger
_LOG = object()
#: the run.json key of the recorded checksums: {path relative to the run: sha256 hex}
CHECKSUMS = "checksums"
#: files whose presence marks a directory as holding a run
RUN_MARKERS = ("item_embeddings.npy", "config.yaml", "model.pt", "run.json")
_HINT = "give a run directory written by `pinsage train --out`"


def resolve_recorded_path(path: str | None, run: Path, key: str = "item_features") -> Path | None:
    """A path recorded in run.json, resolved inside the run directory: None when none is recorded.

    Only a relative path that stays inside ``run`` (after following symbolic links) is opened, so a
    run directory from someone else cannot make a command read a file elsewhere on the machine.
    Raises :class:`~pinsage.InputError` for an absolute path, one that escapes the run, or a missing file.
    """
    if not path:
        return None
    meta = run / FILES["meta"]
    p = Path(path)
    if p.is_absolute():
        raise InputError(f"{meta}: {key} {path!r} is outside the run directory (runs written before "
                         "version 0.1 recorded absolute paths); refused")
    root = run.resolve()
    target = (run / p).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"{meta}: {key} {path!r} points outside the run directory; refused")
    if not target.is_file():
        raise InputError(f"{meta}: {key} {path!r} is missing from the run directory")
    return target


def savable_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as an array ``np.save`` writes without pickling: numbers as they are, strings (or mixed
    objects) as fixed-width unicode."""
    arr = np.asarray(ids)
    if arr.dtype == object:
        vals = arr.tolist()
        if vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            return np.asarray(vals, dtype=np.int64)
        return np.asarray([str(v) for v in vals], dtype=str) if vals else np.zeros(0, dtype="<U1")
    return arr


class RunDir:
    """A run directory on disk.

    Args:
        path: the directory.
        what: how messages name it (``"--run runs/x"`` for a command-line flag).

    Use :meth:`open` for one that must exist and hold given files; the constructor checks nothing.
    """

    def __init__(self, path: str | os.PathLike, what: str | None = None) -> None:
        self.path = Path(path)
        self.what = what or str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, role: str) -> Path:
        """The path of a file by its role in :data:`FILES` (``"embeddings"``, ``"model"``, ...)."""
        return self.path / FILES[role]

    def has(self, role: str) -> bool:
        return self.file(role).exists()

    @classmethod
    def open(cls, path: str | os.PathLike, require: tuple[str, ...] = ("embeddings", "ids"),
             flag: str = "--run") -> "RunDir":
        """An existing run; :class:`~pinsage.InputError` unless ``path`` is a directory holding the
        files of the roles in ``require``."""
        p = Path(path)
        where = f"{flag} {p}" if flag else str(p)
        if not p.exists():
            raise InputError(f"{where}: no such directory; {_HINT}")
        if not p.is_dir():
            raise InputError(f"{where}: not a directory; {_HINT}")
        missing = [FILES[r] for r in require if not (p / FILES[r]).exists()]
        if missing:
            raise InputError(f"{where}: not a pinsage run ({', '.join(missing)} missing); {_HINT}")
        return cls(p, where)

    def holds_run(self) -> bool:
        return any((self.path / m).exists() for m in RUN_MARKERS)

    # -------------------------------------------------------------------------------- integrity
    def _files(self) -> list[Path]:
        """Every file of the run but ``run.json``, ``index/`` (which records its own checksums, so that
        writing an index is one atomic step) and :data:`UNCHECKED`, in sorted order, hidden temporary
        files left out."""
        meta, index = self.file("meta"), FILES["index"]
        return sorted(p for p in self.path.rglob("*")
                      if p.is_file() and p != meta and p.relative_to(self.path).parts[0] != index
                      and p.relative_to(self.path).as_posix() not in UNCHECKED
                      and not any(part.startswith(".") for part in p.relative_to(self.path).parts))

    def record_checksums(self) -> dict[str, str]:
        """Write the SHA-256 of every file of the run into ``run.json`` (replacing earlier ones)."""
        sums = {p.relative_to(self.path).as_posix(): sha256_file(p) for p in self._files()}
        meta = self.meta()
        meta[CHECKSUMS] = sums
        self.write_meta(meta)
        return sums

    def verify(self, role: str) -> None:
        """Check the file (or the files under the directory) of ``role`` against ``run.json``'s checksums.

        A run without recorded checksums (written before they existed) passes. Raises
        :class:`~pinsage.InputError` naming a file that is damaged or missing.
        """
        sums = self.meta().get(CHECKSUMS)
        if not isinstance(sums, dict) or role == "index":  # an index checks its own files on load
            return
        name = FILES[role]
        listed = {rel: h for rel, h in sums.items() if rel == name or rel.startswith(name + "/")}
        for rel, expected in sorted(listed.items()):
            p = (self.path / rel).resolve()
            if not p.is_relative_to(self.path.resolve()):
                raise InputError(f"{self.path / 'run.json'}: checksum entry {rel!r} points outside the run")
            if not p.is_file():
                raise InputError(f"{self.path / rel}: missing (run.json lists it); the run is incomplete")
            if sha256_file(p) != expected:
                raise InputError(f"{self.path / rel}: damaged (its SHA-256 differs from the one run.json "
                                 "recorded); retrain or copy the run again")

    # ---------------------------------------------------------------------------------- metadata
    def meta(self) -> dict[str, Any]:
        """``run.json`` as a dict (empty when absent)."""
        p = self.file("meta")
        if not p.is_file():
            return {}
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: unreadable run metadata: {exc}") from exc
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        with atomic_path(self.file("meta")) as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

    def config(self) -> PinSageConfig:
        return PinSageConfig.from_yaml(self.file("config"))

    def write_config(self, config: PinSageConfig) -> None:
        config.to_yaml(self.file("config"))

    def resolve(self, recorded: str | None, key: str = "item_features") -> Path | None:
        """A path recorded in ``run.json``, confined to the run (see :func:`resolve_recorded_path`)."""
        return resolve_recorded_path(recorded, self.path, key)

    def copy_input(self, source: str | os.PathLike, name: str, data: bytes | None = None) -> str:
        """Copy an input file into ``inputs/`` (through a temporary file) and return its path relative
        to the run, for ``run.json``: the run then carries what ``pinsage embed`` and titles read.

        ``data``: the input's bytes as read (standard input, ``source`` ``-``), written as they are under
        the suffix their content implies (``.parquet``, ``.csv.gz`` or ``.csv``).
        """
        import shutil

        if data is not None:
            rel = f"{FILES['inputs']}/{name}{sniff_suffix(data)}"
            with atomic_path(self.path / rel) as tmp:
                Path(tmp).write_bytes(data)
            return rel
        src = Path(source)
        gzipped = src.suffix.lower() == ".gz"
        rel = f"{FILES['inputs']}/{name}{''.join(src.suffixes[-2:]) if gzipped else src.suffix}"
        with atomic_path(self.path / rel) as tmp:
            shutil.copyfile(src, tmp)
        return rel

    # ---------------------------------------------------------------------- embeddings and ids
    def ids(self) -> np.ndarray:
        self.verify("ids")
        try:
            return np.load(self.file("ids"), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.what}: could not read {FILES['ids']}: {exc}") from exc

    def embeddings_and_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """``(item_embeddings (n, d) float32, item_ids (n,))``; InputError when unreadable or inconsistent."""
        self.verify("embeddings")
        try:
            emb = np.load(self.file("embeddings"), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.what}: could not read {FILES['embeddings']}: {exc}") from exc
        ids = self.ids()
        if emb.ndim != 2 or ids.ndim != 1 or len(ids) != len(emb):
            raise InputError(f"{self.what}: {FILES['embeddings']} {emb.shape} and {FILES['ids']} {ids.shape} "
                             "do not match one row per item")
        return np.ascontiguousarray(emb, dtype=np.float32), ids

    def write_embeddings(self, embeddings: np.ndarray, ids: np.ndarray) -> None:
        save_npy_atomic(self.file("embeddings"), np.asarray(embeddings, dtype=np.float32))
        save_npy_atomic(self.file("ids"), savable_ids(ids))

    # -------------------------------------------------------------------------------- the model
    def model_config_and_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(PinSage.get_config() dict, state_dict)`` from ``model.pt``, loaded with ``weights_only=True``."""
        import torch

        p = self.file("model")
        self.verify("model")
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
            kwargs, state = dict(ckpt["kwargs"]), dict(ckpt["state_dict"])
        except Exception as exc:  # torch raises many types on a corrupt or unsafe file
            raise InputError(f"{p}: could not be read as a pinsage model: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        return kwargs, state

    def model(self):
        """The trained :class:`pinsage.PinSage` (on CPU)."""
        from pinsage.nn.model import PinSage

        kwargs, state = self.model_config_and_state()
        try:
            model = PinSage.from_config(kwargs)
            model.load_state_dict(state)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"{self.file('model')}: does not describe a pinsage model: {exc}") from exc
        return model

    def write_model(self, model) -> None:
        import torch

        with atomic_path(self.file("model")) as tmp:
            torch.save({"state_dict": model.state_dict(), "kwargs": model.get_config()}, tmp)

    # ----------------------------------------------------------- graph, neighbourhoods, inputs
    def graph(self):
        """The training graph: an :class:`~pinsage.InteractionGraph`, or a :class:`~pinsage.graph.HeteroGraph`
        for a run over several relations (``graph/hetero.json``)."""
        from pinsage.graph import HeteroGraph, InteractionGraph

        self.verify("graph")
        if (self.file("graph") / "hetero.json").exists():
            return HeteroGraph.load(self.file("graph"))
        return InteractionGraph.load(self.file("graph"))

    def write_graph(self, graph) -> None:
        """Save ``graph`` (either kind; both write a directory of ``.npy`` files and JSON, nothing pickled)."""
        graph.save(self.file("graph"))

    def neighborhoods(self):
        """The saved neighbourhoods: one :class:`~pinsage.sampling.Neighborhoods`, or a dict relation -> table
        for a run with per-relation neighbourhoods (``sampler.merge_relations: false``)."""
        from pinsage.sampling.blocks import Neighborhoods

        p = self.file("neighborhoods")
        self.verify("neighborhoods")
        try:
            with np.load(p, allow_pickle=False) as z:
                if "relations" in z.files:
                    names = [str(r) for r in z["relations"].tolist()]
                    return {r: Neighborhoods(z[f"r{k}_indptr"], z[f"r{k}_indices"], z[f"r{k}_weights"])
                            for k, r in enumerate(names)}
                return Neighborhoods(z["indptr"], z["indices"], z["weights"])
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{p}: could not be read as neighbourhoods: {exc}") from exc

    def write_neighborhoods(self, nb) -> None:
        """Write one table (``indptr``, ``indices``, ``weights``) or per-relation tables (``relations``, a
        unicode array of the names, and ``r{k}_indptr`` ... for relation ``k``); no object arrays."""
        with atomic_path(self.file("neighborhoods")) as tmp:
            with open(tmp, "wb") as f:
                if isinstance(nb, dict):
                    arrays = {"relations": np.array(list(nb), dtype=str)}
                    for k, t in enumerate(nb.values()):
                        arrays.update({f"r{k}_indptr": t.indptr, f"r{k}_indices": t.indices,
                                       f"r{k}_weights": t.weights})
                    np.savez(f, **arrays)
                else:
                    np.savez(f, indptr=nb.indptr, indices=nb.indices, weights=nb.weights)

    def item_features(self, mmap: bool = True) -> np.ndarray | None:
        """The saved node inputs (memory-mapped by default), or None when the run has none."""
        p = self.file("features")
        if not p.exists():
            return None
        self.verify("features")
        try:
            return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: could not be read: {exc}") from exc

    def write_item_features(self, features: np.ndarray) -> None:
        save_npy_atomic(self.file("features"), np.asarray(features, dtype=np.float32))

    def feature_encoder(self):
        """The fitted :class:`pinsage.ItemFeatureEncoder`, or None when the run had no item features."""
        from pinsage.features import ItemFeatureEncoder

        p = self.file("encoder")
        if not p.is_file():
            return None
        self.verify("encoder")
        try:
            return ItemFeatureEncoder.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{p}: not a valid feature encoder: {exc}") from exc

    def write_feature_encoder(self, encoder) -> None:
        with atomic_path(self.file("encoder")) as tmp:
            Path(tmp).write_text(json.dumps(encoder.to_dict()), encoding="utf-8")

    # ------------------------------------------------------------------------------- the index
    def index(self, embeddings: np.ndarray | None = None, ids: np.ndarray | None = None,
              warn_to: IO[str] | None | object = _LOG):
        """The run's saved ``index/`` when present and matching its items, else an exact index built
        on the fly. A stale index is reported as a warning of the ``pinsage.run`` logger, or written
        to ``warn_to`` when that is a text stream (None: not reported)."""
        from pinsage.index import ItemIndex

        if embeddings is None or ids is None:
            embeddings, ids = self.embeddings_and_ids()
        path = self.file("index")
        if path.is_dir():
            self.verify("index")
            index = ItemIndex.load(path)
            same = len(index) == len(ids) and index.dim == embeddings.shape[1]
            if same:
                try:
                    same = bool(np.all(np.asarray(index.ids).astype(str) == np.asarray(ids).astype(str)))
                except (TypeError, ValueError):
                    same = False
            if same:
                return index
            note = f"{path} does not match the run's items (stale index); using exact search"
            if warn_to is _LOG:
                log.warning("%s", note)
            elif warn_to is not None:
                print(f"pinsage: {note}", file=warn_to)  # type: ignore[arg-type]
        return ItemIndex.build(embeddings, ids, kind="exact")

    def write_index(self, index) -> Path:
        """Save ``index`` into ``index/`` in one atomic step (its ``meta.json`` holds its checksums)."""
        return index.save(self.file("index"))

    # ------------------------------------------------------------------------------- titles
    def titles(self, ids: np.ndarray, meta: dict[str, Any] | None = None) -> np.ndarray | None:
        """Titles of ``ids`` (object array, None where unknown) from the ``title`` column of the run's
        features file, or None when the file, its key column or a ``title`` column is missing."""
        meta = self.meta() if meta is None else meta
        key = meta.get("item_key")
        try:
            path = self.resolve(meta.get("item_features"))
            if path is None or not key:
                return None
            self.verify("inputs")
            df = read_table(path)
        except InputError:
            return None
        if key not in df.columns or "title" not in df.columns:
            return None
        import pandas as pd

        titles = df["title"].where(df["title"].notna(), None).to_numpy(dtype=object)
        # compare as strings so int ids in the run match int-like keys read back in any dtype;
        # a key listed twice takes its last title
        by_key = pd.Series(titles, index=np.asarray(df[key].astype(str), dtype=object))
        by_key = by_key[~by_key.index.duplicated(keep="last")]
        pos = pd.Index(by_key.index).get_indexer(lookup_keys(np.asarray(ids).astype(str)))
        out = np.full(len(ids), None, dtype=object)
        out[pos >= 0] = by_key.to_numpy()[pos[pos >= 0]]
        return out
