"""The model room: what a trained model is and how it is stored.

lm (`PoetryLM`, `ModelConfig`, the LSTM layers), spec (parameter names and shapes, without torch),
head_loss (the fused output-layer loss), step_weights (the weights the decoding step reads),
kernels (the compiled C kernels and their PyTorch twins), checkpoint (safetensors + JSON),
bundled (the model shipped under models/ and `tangshi export`).

May import: errors, text, machine, files, outputs, data. Never train, decode, lesson or above.
"""
