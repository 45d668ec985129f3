"""The lesson room: the course assignment's LSTM, done by hand and checked.

reference_lstm (Part 1 in the assignment's notation), numpy_lstm and numpy_optim (the NumPy twin:
forward, full BPTT, optimisers), gradcheck (finite differences and autograd against both),
worked_example (H = 1, every number printed).

May import: errors, model.spec. NumPy and torch only as a reference; never train, decode or above.
"""
