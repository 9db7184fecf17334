"""The shared baseline script (../shared/bench/st_embed_baseline.py) for any sentence-transformers
model: its ONNX engine assumes BERT's three inputs (MPNet's tokenizer gives no
`token_type_ids`) and 384 dimensions. This replaces only the export (the model's own inputs,
whichever it has) and the ONNX engine's output width, and runs the shared script's main()
unchanged.

    python bench/st_baseline_any_model.py PATH/TO/st_embed_baseline.py [its arguments]
"""
import hashlib
import importlib.util
import sys
import warnings
from pathlib import Path

import torch

script = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location("st_embed_baseline", script)
baseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(baseline)


def export_onnx(model, model_dir, cache_dir):
    weights = Path(model_dir, "model.safetensors").read_bytes()
    name = Path(model_dir).name
    path = Path(cache_dir, f"{name}-{hashlib.sha256(weights).hexdigest()[:16]}-opset{baseline.ONNX_OPSET}.onnx")
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    body = model[0].auto_model.eval()
    attention = body.config._attn_implementation
    body.set_attn_implementation("eager")
    example = model.tokenizer(["a short one", "a somewhat longer example sentence"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in example]

    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, *inputs):
            return self.body(**dict(zip(names, inputs))).last_hidden_state

    tmp = path.with_suffix(".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Body(),
            tuple(example[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]},
            opset_version=baseline.ONNX_OPSET,
            dynamo=False,
        )
    body.set_attn_implementation(attention)
    tmp.replace(path)
    return path


def encode(self, texts, batch_size):
    """The shared engine's encode with the model's width rather than 384."""
    import numpy as np

    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = None
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = self.tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        feeds = {name: enc[name].astype(np.int64) for name in self.input_names}
        hidden = self.session.run(None, feeds)[0]
        if out is None:
            out = np.empty((len(texts), hidden.shape[-1]), dtype=np.float32)
        mask = enc["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out[idx] = pooled / np.maximum(norms, 1e-12)
    return out


baseline.export_onnx = export_onnx
baseline.OnnxEngine.encode = encode
baseline.main()
