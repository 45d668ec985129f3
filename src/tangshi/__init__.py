"""tangshi: a character-level LSTM over the Complete Tang Poems (全唐诗)."""

__version__ = "0.1.0"
