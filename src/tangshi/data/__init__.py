"""The data room: the Complete Tang Poems from JSON to tensors.

corpus (read, clean, filter, sample, split), prepare (`tangshi data fetch` / `data prepare` and the
prepared folder's files), vocab (characters and the four specials), batches (poems → padded id
tensors), splits (a prepared split as tensors, checked).

May import: errors, text, machine, files, outputs. Nothing from the rooms above (model, train, decode…).
"""
