"""Import and export against files Python itself writes: NumPy's .npy (float32 and float64)
and pickles as the old scripts wrote them (lists of dicts holding NumPy arrays, dicts of
columns with a 2-D array, plain lists; protocols 2, 4 and 5), read by `mnemo import`; then
`mnemo export --format npy` read back by numpy. Vectors are compared bit for bit (collections
made with --distance dot keep them exactly as read). Pickles that would run code are refused.

    python test_import.py MNEMO_BIN
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

BIN = os.path.abspath(sys.argv[1])
WORK = tempfile.mkdtemp(prefix="mnemo-import-")
DATA = os.path.join(WORK, "data")
rng = np.random.default_rng(7)


def mnemo(*args, ok=True):
    run = subprocess.run(
        [BIN, *args, "--data-dir", DATA], capture_output=True, text=True, cwd=WORK
    )
    if ok and run.returncode != 0:
        raise AssertionError(f"mnemo {' '.join(args)} failed:\n{run.stderr}")
    if not ok and run.returncode == 0:
        raise AssertionError(f"mnemo {' '.join(args)} should have failed:\n{run.stdout}")
    return run


def exported(collection):
    """The collection as mnemo exports it: {id: (vectors, payload)}."""
    path = os.path.join(WORK, f"{collection}.export.jsonl")
    mnemo("export", "--collection", collection, "-o", path)
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert lines[0]["mnemo_export"] == 1 and lines[0]["collection"] == collection
    return {p["id"]: (p.get("vectors", {}), p["payload"]) for p in lines[1:]}


def same_bits(expected, got, what):
    expected = np.asarray(expected, dtype=np.float32)
    got = np.asarray(got, dtype=np.float32)
    assert expected.shape == got.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert np.array_equal(expected.view(np.uint32), got.view(np.uint32)), f"{what}: bits differ"


def path(name):
    return os.path.join(WORK, name)


def test_npy():
    rows, dim = 150, 48
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        vectors = rng.standard_normal((rows, dim)).astype(dtype)
        np.save(path(f"vec_{name}.npy"), vectors)
        with open(path(f"vec_{name}.jsonl"), "w", encoding="utf-8") as f:
            for i in range(rows):
                f.write(json.dumps({"id": f"task-{i}", "text": f"tâche {i}", "n": i}) + "\n")
        collection = f"npy_{name}"
        out = mnemo("import", path(f"vec_{name}.npy"), "--collection", collection,
                    "--distance", "dot")
        assert f"imported {rows} of {rows} records" in out.stdout, out.stdout
        points = exported(collection)
        assert len(points) == rows
        by_n = {payload["n"]: (vecs, payload) for vecs, payload in points.values()}
        for i in range(rows):
            vecs, payload = by_n[i]
            assert payload["legacy_id"] == f"task-{i}" and payload["text"] == f"tâche {i}"
            same_bits(vectors[i].astype(np.float32), vecs["dense"], f"{name} row {i}")
    # No sidecar: ids are row numbers.
    np.save(path("bare.npy"), rng.standard_normal((5, 4)).astype(np.float32))
    mnemo("import", path("bare.npy"), "--collection", "bare")
    assert sorted(exported("bare")) == [0, 1, 2, 3, 4]
    # A NaN and a wrong dtype are named.
    broken = rng.standard_normal((4, 4)).astype(np.float32)
    broken[2, 3] = np.nan
    np.save(path("nan.npy"), broken)
    err = mnemo("import", path("nan.npy"), "--collection", "nan", ok=False).stderr
    assert "record 2" in err and "NaN" in err and "column 3" in err, err
    np.save(path("ints.npy"), np.arange(12).reshape(3, 4))
    err = mnemo("import", path("ints.npy"), "--collection", "ints", ok=False).stderr
    assert "float32 or float64" in err, err
    print(f"npy: float32 and float64, {rows} rows each, bit-exact; NaN and int dtype refused")


def test_pickles():
    rows, dim = 40, 24
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    records = [
        {"id": f"t{i}", "text": f"task {i}", "vector": vectors[i],
         "metadata": {"status": "open" if i % 2 else "done", "rank": i}}
        for i in range(rows)
    ]
    columns = {
        "ids": [f"t{i}" for i in range(rows)],
        "texts": [f"task {i}" for i in range(rows)],
        "metadatas": [{"rank": i} for i in range(rows)],
        "embeddings": vectors.astype(np.float64),
        "model": "old-model",
    }
    plain = [{"id": i, "embedding": [float(x) for x in vectors[i]], "text": f"task {i}"}
             for i in range(rows)]
    cases = [
        ("records_p2", records, 2),
        ("records_p4", records, 4),
        ("records_p5", records, 5),
        ("columns_p4", columns, 4),
        ("columns_p5", columns, 5),
        ("plain_p3", plain, 3),
    ]
    for name, value, protocol in cases:
        with open(path(f"{name}.pkl"), "wb") as f:
            pickle.dump(value, f, protocol=protocol)
        # The name says nothing: the content does.
        os.rename(path(f"{name}.pkl"), path(f"{name}.data"))
        mnemo("import", path(f"{name}.data"), "--collection", name, "--distance", "dot")
        points = exported(name)
        assert len(points) == rows, (name, len(points))
        for vecs, payload in points.values():
            i = payload.get("rank", payload.get("legacy_id", None))
            if isinstance(i, str):
                i = int(i[1:])
            if i is None:
                i = int(payload["text"].split()[1])
            same_bits(vectors[i], vecs["dense"], f"{name} record {i}")
            assert payload["text"] == f"task {i}", (name, payload)
        if name.startswith("columns"):
            assert all(p["model"] == "old-model" for _, p in points.values())
    # Code in a pickle is never run: refused, naming what it asked for.
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + path("pwned"),))
    with open(path("evil.pkl"), "wb") as f:
        pickle.dump([{"id": 1, "vector": [1.0, 2.0], "x": Evil()}], f)
    err = mnemo("import", path("evil.pkl"), "--collection", "evil", ok=False).stderr
    assert "never runs code" in err and "system" in err, err
    assert not os.path.exists(path("pwned"))
    print(f"pickle: {len(cases)} layouts and protocols, bit-exact; a pickle calling os.system refused")


def test_npy_export_round_trip():
    mnemo("export", "--collection", "records_p4", "--format", "npy", "-o", path("out.npy"))
    array = np.load(path("out.npy"))
    with open(path("out.jsonl"), encoding="utf-8") as f:
        sidecar = [json.loads(line) for line in f]
    assert array.dtype == np.float32 and array.shape == (40, 24), array.shape
    assert len(sidecar) == 1 + 40 and sidecar[0]["npy_vector"] == "dense"
    before = exported("records_p4")
    for row, line in zip(array, sidecar[1:]):
        same_bits(before[line["id"]][0]["dense"], row, f"npy row of {line['id']}")
    mnemo("import", path("out.npy"), "--collection", "back")
    assert exported("back") == before
    print("export npy: numpy reads it; imported again, identical points")


if __name__ == "__main__":
    test_npy()
    test_pickles()
    test_npy_export_round_trip()
    print("import tests passed")
