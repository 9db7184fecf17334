"""Reference vectors of all-mpnet-base-v2 from sentence-transformers, for mnemo's parity test.

The 400 texts of ../shared/fixtures/minilm-reference.jsonl, embedded by sentence-transformers
(the versions pinned in ../shared/bench/requirements.txt) with the model folder given, written
as zstd-compressed JSON lines {"text", "n_tokens", "embedding"} (floats as the shortest decimal
that reads back as the same float32).

    bench/.venv/bin/python bench/make-mpnet-fixtures.py MODEL_DIR SHARED_DIR OUT
"""
import json
import sys

import numpy as np
from sentence_transformers import SentenceTransformer

model_dir, shared, out = sys.argv[1:]
with open(f"{shared}/fixtures/minilm-reference.jsonl", encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in f]
model = SentenceTransformer(model_dir, device="cpu")
vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
tokenizer = model.tokenizer
lines = []
for text, vector in zip(texts, vectors.astype(np.float32)):
    n_tokens = len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
    floats = ",".join(np.format_float_positional(v, unique=True, trim="-") for v in vector)
    lines.append(json.dumps({"text": text, "n_tokens": n_tokens}, ensure_ascii=False)[:-1]
                 + ', "embedding": [' + floats + "]}")
print(f"{len(lines)} texts, max_seq_length {model.max_seq_length}", file=sys.stderr)
sys.stdout = open(out, "w", encoding="utf-8")
print("\n".join(lines))
