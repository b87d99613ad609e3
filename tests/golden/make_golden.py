"""Write the golden arrays of ``tests/test_golden.py`` from the code as it stands.

Run only when a change is *meant* to change seeded outputs, and say so in the commit:

    python tests/golden/make_golden.py

It trains the small seeded runs of :data:`tests.test_golden.CASES` (each in a subprocess on AVX2 code
paths, as the test does) and saves their item embeddings
and ids as ``.npy`` files (no pickles) beside this script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from test_golden import CASES, golden_run_portable  # noqa: E402


def main() -> int:
    import tempfile

    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            ids, emb = golden_run_portable(name, Path(tmp))
        np.save(HERE / f"{name}_embeddings.npy", emb, allow_pickle=False)
        np.save(HERE / f"{name}_ids.npy", np.asarray(ids).astype(str), allow_pickle=False)
        print(f"{name}: {emb.shape} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
