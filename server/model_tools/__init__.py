"""`clip-web models ...`: mirror, export, quantize, fp16, fidelity report, text-model repair.

Modules: pull (hub mirror), export (checkpoint -> ONNX), quantize (dynamic uint8/int8), fp16
(float16 weights), report (fidelity vs the fp32 source), fix_text (int64 ArgMax repair),
common (shared helpers), cli (argparse wiring). torch/transformers/onnx/onnxruntime are the
optional `clip-web[models]` group and are imported only by the commands that need them.
"""
