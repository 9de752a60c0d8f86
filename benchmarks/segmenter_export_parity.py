"""Masks of an exported segmenter bundle (zoo.runtime, no torch in the loop) vs eager ``predict`` on real photos.

``zoo export`` already refuses a segmenter below 99.9% pixel agreement on scikit-image's astronaut, coffee and
chelsea; this records the figures it measured (parity.json's ``"predictions"``) and the export's wall time.
Random init (``pretrained=False``): agreement is measured on the network as built, weights do not matter to it.

    python -m benchmarks.segmenter_export_parity [--model torchvision:lraspp_mobilenet_v3_large] [--resize-size 520]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env


def main() -> None:
    import zoo
    from zoo.export import export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="torchvision:lraspp_mobilenet_v3_large")
    parser.add_argument("--resize-size", type=int, default=None, help="the card's resize_size, made smaller")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = zoo.load(args.model, pretrained=False, device="cpu")
        if args.resize_size:
            folder = model.save(Path(tmp) / "model")
            card = json.loads((folder / "card.json").read_text())
            card["preprocessing"]["resize_size"] = args.resize_size
            (folder / "card.json").write_text(json.dumps(card))
            model = zoo.load(str(folder), device="cpu")
        start = time.perf_counter()
        bundle = export(model, Path(tmp) / "bundle")
        seconds = time.perf_counter() - start
        parity = json.loads((bundle / "parity.json").read_text())
    write({"benchmark": "segmenter_export_parity", "model": args.model, "preprocessing": model.card.preprocessing,
           "export_seconds": round(seconds, 1), "logits_max_abs_diff": parity["max_abs_diff"],
           "predictions": parity["predictions"], "env": zoo_env()})


if __name__ == "__main__":
    main()
