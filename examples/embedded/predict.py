"""Run an mlcycle ONNX export with nothing but onnxruntime and numpy.

    mlcycle models export flights@champion --format onnx --out exported/
    python examples/embedded/predict.py exported/ '{"month": 7, "carrier": "UA", ...}'

The manifest says how to build the model's input matrix: per feature a number
("number"), a code from a category list ("ordinal": unknown or missing → NaN)
or a one-hot block ("onehot": unknown → all zeros).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


def encode(manifest: dict[str, Any], rows: list[dict[str, Any]]) -> np.ndarray:
    """The float32 matrix the exported model takes."""
    width = manifest["input"]["shape"][1]
    out = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        j = 0
        for block in manifest["preprocessing"]:
            value = row.get(block["feature"])
            if block["how"] == "number":
                out[i, j] = math.nan if value is None else float(value)
                j += 1
            elif block["how"] == "ordinal":
                cats = block["categories"]
                out[i, j] = cats.index(value) if value in cats else math.nan
                j += 1
            else:
                cats = block["categories"]
                if value in cats:
                    out[i, j + cats.index(value)] = 1.0
                j += len(cats)
    return out


def predict(folder: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {manifest["input"]["name"]: encode(manifest, rows)})
    if manifest["task"] == "regression":
        return [{"prediction": float(v)} for v in np.ravel(outputs[0])]
    classes = manifest["estimator_classes"]
    return [
        {
            "prediction": classes[int(np.argmax(p))],
            "probabilities": dict(zip(map(str, classes), map(float, p), strict=True)),
        }
        for p in outputs[-1]
    ]


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    given = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    for result in predict(folder, given if isinstance(given, list) else [given]):
        print(json.dumps(result))
