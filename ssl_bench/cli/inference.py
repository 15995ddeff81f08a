"""``ssl-bench predict`` and ``ssl-bench export``: the flags; the work is in
:mod:`ssl_bench.inference` (imported once the flags are parsed: help needs no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ssl_bench.cli.flags import Parser
from ssl_bench.core.errors import UserError

MODELS = ("reported", "student", "teacher")
DEVICES = ("auto", "cpu", "cuda", "mps")
EXPORT_FORMATS = ("onnx", "torchscript")


def _add_model(parser: Parser) -> None:
    parser.add_argument("run", type=Path, help="a finished run folder (with best.pt)")
    parser.add_argument("--model", choices=MODELS, default="reported",
                        help="the run's reported model (default), its student or its teacher")


def command_predict(argv: Sequence[str]) -> int:
    """Class probabilities of a finished run's model on new images."""
    parser = Parser(prog="ssl-bench predict", description=(
        "Write class probabilities of a finished run's model for each image of INPUT, "
        "with the run's own preprocessing (size, channels, mean and std): one CSV row per "
        "image, the image as given and one column per class (softmax, or one sigmoid per "
        "finding for multi-label runs)."))
    _add_model(parser)
    parser.add_argument("input", type=Path, help="an image file, a folder of images (not "
                        "recursive) or a CSV file with a column of image paths")
    parser.add_argument("--image-column", default="image",
                        help="the CSV column holding the image paths (default image)")
    parser.add_argument("--image-root", type=Path, help="resolve a CSV's relative image "
                        "paths against this folder (default: the CSV's folder)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto (cuda, then mps, then cpu; default), cpu, cuda or mps")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images decoded and predicted at a time (default 64)")
    parser.add_argument("-o", "--output", type=Path, help="the CSV file to write (atomically)"
                        "; default: standard output, the summary line on standard error")
    args = parser.parse_args(argv)
    from ssl_bench.inference.predict import predict_command

    return predict_command(args.run, args.input, model=args.model, device=args.device,
                           batch_size=args.batch_size, output=args.output,
                           image_column=args.image_column, image_root=args.image_root)


def command_export(argv: Sequence[str]) -> int:
    """A finished run's model as ONNX or TorchScript, with its preprocessing beside it."""
    parser = Parser(prog="ssl-bench export", description=(
        "Export a finished run's model (normalised float [N, C, H, W] batch -> class "
        "probabilities, any N) to ONNX or TorchScript, check it against torch (largest "
        "difference at most 1e-4) and record its preprocessing, classes and origin in "
        "OUTPUT.json."))
    _add_model(parser)
    parser.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS, required=True,
                        help="onnx (needs pip install 'ssl-bench[export]') or torchscript")
    parser.add_argument("-o", "--output", type=Path,
                        help="the file to write (default model.onnx or model.pt)")
    parser.add_argument("--opset", type=int, help="the ONNX opset (default 18)")
    args = parser.parse_args(argv)
    if args.opset is not None and args.fmt != "onnx":
        raise UserError("--opset applies to --format onnx only")
    from ssl_bench.inference.export import DEFAULT_OPSET, export_model, sidecar_path
    from ssl_bench.inference.model import load_model

    predictor = load_model(args.run, args.model)
    path, record = export_model(predictor, args.fmt, args.output,
                                DEFAULT_OPSET if args.opset is None else args.opset)
    print(f"exported the {predictor.model} of {args.run} (step {predictor.step}) as "
          f"{args.fmt} -> {path}; preprocessing in {sidecar_path(path)}; max abs difference "
          f"from torch {record['check']['max_abs_difference']:.2g} (batches of "
          f"{', '.join(map(str, record['check']['batch_sizes']))})")
    return 0
