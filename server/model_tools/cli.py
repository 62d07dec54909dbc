"""`clip-web models ...`: argparse wiring only; the work is in the sibling modules.

    clip-web models pull xenova-vit-b-32-fp32 --to models/ [--hub URL]
    clip-web models export CHECKPOINT --to models/my-clip [--id my-clip]
    clip-web models quantize models/my-clip --to models/my-clip-uint8 [--uint8 | --int8]
    clip-web models fp16 models/my-clip --to models/my-clip-fp16
    clip-web models optimize models/my-clip models/my-clip-opt
    clip-web models report models/my-clip models/my-clip-uint8 ... [--checkpoint CHECKPOINT]
    clip-web models fix-text-model IN.onnx OUT.onnx [--int32-input]

Errors a user can act on print `clip-web: error: ...` on stderr and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import ToolError, describe_os_error


def _log(msg: str) -> None:
    print(f"clip-web: {msg}", file=sys.stderr, flush=True)


def _fail(message: str) -> int:
    print(f"clip-web: error: {message}", file=sys.stderr)
    return 2


def _guarded(doing: str, work) -> int:
    """Run work(); ToolError and OSError become one clear line and exit status 2."""
    try:
        work()
    except ToolError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(describe_os_error(exc, doing))
    except KeyboardInterrupt:
        return _fail(f"interrupted while {doing}")
    return 0


def cmd_pull(args) -> int:
    from .pull import pull

    def work():
        m = pull(args.preset, Path(args.to), hub=args.hub, model_id=args.id, retries=args.retries,
                 quiet=args.quiet, log=_log)
        _log(f"{m['id']}: mirrored into {Path(args.to) / m['mirror_of']} "
             f"(serve it with: clip-web serve --models-dir {args.to})")
    return _guarded(f"pulling {args.preset}", work)


def cmd_export(args) -> int:
    from .export import export_checkpoint

    def work():
        m = export_checkpoint(Path(args.checkpoint), Path(args.to), model_id=args.id, name=args.name,
                              force=args.force, legacy_int64=args.legacy_int64_text, log=_log)
        _log(f"{m['id']}: image {m['image']['bytes'] / 1e6:.1f} MB, text {m['text']['bytes'] / 1e6:.1f} MB "
             f"-> {args.to}")
    return _guarded(f"exporting to {args.to}", work)


def cmd_quantize(args) -> int:
    from .quantize import quantize_folder

    def work():
        m = quantize_folder(Path(args.dir), Path(args.to), "int8" if args.int8 else "uint8", force=args.force, log=_log)
        _log(f"{m['id']} -> {args.to}")
    return _guarded(f"quantizing into {args.to}", work)


def cmd_fp16(args) -> int:
    from .fp16 import fp16_folder

    def work():
        m = fp16_folder(Path(args.dir), Path(args.to), force=args.force, log=_log)
        _log(f"{m['id']} -> {args.to}")
    return _guarded(f"writing float16 weights into {args.to}", work)


def cmd_optimize(args) -> int:
    from .optimize import optimize_folder

    def work():
        m = optimize_folder(Path(args.dir), Path(args.dest), force=args.force,
                            assets_dir=Path(args.assets) if args.assets else None, log=_log)
        fid = m["optimized"]["fidelity"]
        worst = min(v["cos_min"] for engine in ("web", "native") for v in fid[engine].values())
        _log(f"{m['id']} -> {args.dest} (cosine vs source >= {worst:.7f} in onnxruntime-web "
             f"{fid['onnxruntime_web']} and onnxruntime {fid['onnxruntime']})")
    return _guarded(f"optimising into {args.dest}", work)


def cmd_report(args) -> int:
    from .report import REPORT, report, table

    def work():
        if args.runs < 1:
            raise ToolError("--runs must be at least 1")
        results = report([Path(d) for d in args.dirs], checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                         sources=[Path(s) for s in args.source], threads=args.threads, runs=args.runs,
                         assets_dir=Path(args.assets) if args.assets else None, log=_log)
        print(table(results))
        _log(f"wrote {REPORT} and a manifest `report` summary in {len(results)} model folder(s)")
    return _guarded("writing the report", work)


def cmd_fix_text(args) -> int:
    from .fix_text import fix_text_model

    def work():
        check = fix_text_model(Path(args.input), Path(args.output), input_name=args.input_name,
                               int32_input=args.int32_input)
        for line in check["changes"] or ["no int64 ArgMax found: copied unchanged"]:
            _log(line)
        _log(f"check: {check['checked_samples']} sample id rows through onnxruntime, max abs diff "
             f"{check['max_abs_diff']} vs {args.input}; input {check['input']!r} is {check['input_dtype_after']}")
        print(json.dumps(check))
    return _guarded(f"writing {args.output}", work)


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="mirror, export, quantize and check CLIP ONNX models")
    sub = models.add_subparsers(dest="models_command", required=True)

    p = sub.add_parser("pull", help="download a preset's files into a local models folder (resumable)",
                       description="Download a model's files and write a local manifest. An interrupted "
                                   "download keeps FILE.part on purpose; the next run resumes it (HTTP Range).")
    p.add_argument("preset", help="a preset id (server/presets/*.json) or the path of a manifest JSON")
    p.add_argument("--to", required=True, help="models folder; the model goes into TO/<preset-id>/")
    p.add_argument("--hub", help="use this base URL instead of https://huggingface.co/ (a mirror)")
    p.add_argument("--id", help="id of the local copy (default: <preset-id>-local)")
    p.add_argument("--retries", type=int, default=3, help="resume attempts per file within this run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("export", help="transformers CLIP checkpoint -> image.onnx + text.onnx + manifest")
    p.add_argument("checkpoint", help="folder written by CLIPModel.save_pretrained")
    p.add_argument("--to", required=True, help="output model folder")
    p.add_argument("--id", help="manifest id (default: the output folder's name)")
    p.add_argument("--name", help="display name")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--legacy-int64-text", action="store_true",
                   help="export the text model with int64 ids and an int64 ArgMax (the broken layout; for tests)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="dynamic 8-bit quantization of MatMul and Gather weights")
    p.add_argument("dir", help="fp32 model folder (with manifest.json)")
    p.add_argument("--to", required=True, help="output model folder")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--uint8", action="store_true", help="uint8 weights (default)")
    kind.add_argument("--int8", action="store_true", help="int8 weights")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("fp16", help="float16 weights, float32 inputs/outputs/compute (half the size)")
    p.add_argument("dir", help="fp32 model folder (with manifest.json)")
    p.add_argument("--to", required=True, help="output model folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_fp16)

    p = sub.add_parser("optimize", help="offline-optimised graphs (fused attention, LayerNorm, ...), checked in "
                                         "onnxruntime-web's wasm build",
                       description="Write DEST: SRC's encoders with onnxruntime's portable graph rewrites and "
                                   "transformer fusions, kept only if onnxruntime-web's wasm build (run under "
                                   "Node) runs them and the embeddings match SRC's (cosine >= 0.99999).")
    p.add_argument("dir", metavar="SRC", help="fp32 model folder (with manifest.json)")
    p.add_argument("dest", metavar="DEST", help="output model folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--assets", help="assets folder holding ort-<version>/ (default: the server's, .assets)")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("report", help="fidelity, size and speed of variants vs their fp32 source")
    p.add_argument("dirs", nargs="+", help="model folders (variants find their source beside them)")
    p.add_argument("--checkpoint", help="also compare with torch on this transformers checkpoint")
    p.add_argument("--source", action="append", default=[], help="folder of a source model elsewhere")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    p.add_argument("--runs", type=int, default=10, help="timed batch-1 image runs per model")
    p.add_argument("--assets", help="assets folder holding ort-<version>/, for the onnxruntime-web rows of "
                                    "graph-optimised variants (default: the server's, .assets)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("fix-text-model", help="repair a text model's int64 ArgMax for onnxruntime-web")
    p.add_argument("input", help="text encoder .onnx")
    p.add_argument("output", help="repaired .onnx (written only if the check passes)")
    p.add_argument("--input-name", help="the ids input, if the model has several inputs")
    p.add_argument("--int32-input", action="store_true", help="also make an int64 ids input int32")
    p.set_defaults(func=cmd_fix_text)
