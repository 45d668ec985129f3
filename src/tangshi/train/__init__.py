"""The training room: `tangshi train` and `tangshi eval`.

loop (the epoch loop, one for both backends), config (`TrainConfig`, presets, option rules),
torch_backend and numpy_backend (one optimiser step each), graph_step (a step replayed from a
CUDA graph), runs (a run's folder: checkpoints, `last`, `best`, metrics.jsonl), evaluate (dev
perplexity).

May import: errors, text, machine, files, outputs, data, model, lesson (the NumPy backend).
"""
