"""Convert a model to OpenVINO IR with a verified tokenizer: a thin script over `sdgen.models.convert`.

    python scripts/convert_model.py smollm2-135m-instruct --out models/smollm2-int4 --weights int4
    python scripts/convert_model.py path/to/model.gguf --out models/m-int8
    python scripts/convert_model.py path/to/hf-dir --out models/m-int4 --weights int4 --awq --dataset examples/customer_service.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdgen.models.convert import ConvertOptions, convert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="HF model dir, GGUF file, built-in name or hub id")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--weights", default="int8", choices=["fp16", "int8", "int4"])
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--group-size-fallback", default="adjust", choices=["adjust", "ignore", "error"])
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--sym", action="store_true")
    parser.add_argument("--awq", action="store_true")
    parser.add_argument("--scale-estimation", action="store_true")
    parser.add_argument("--all-layers", action="store_true")
    parser.add_argument("--dataset", type=Path, help="spec whose prompts calibrate AWQ / scale estimation")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    options = ConvertOptions(
        weights=args.weights, group_size=args.group_size, group_size_fallback=args.group_size_fallback, ratio=args.ratio, sym=args.sym, awq=args.awq,
        scale_estimation=args.scale_estimation, all_layers=args.all_layers, calibration_spec=args.dataset,
    )  # fmt: skip
    report = convert(args.src, args.out, options, overwrite=args.overwrite, log=print)
    print(f"{report.output}: {report.ir_bytes / 2**20:.1f} MiB, {report.seconds:.1f} s, tokenizer ok")


if __name__ == "__main__":
    main()
