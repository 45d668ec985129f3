"""The lesson room: the course assignment's LSTM, done by hand and checked.

reference_lstm (Part 1 in the assignment's notation), numpy_lstm with numpy_setup and numpy_optim
(the NumPy twin: forward, full BPTT, optimisers), small_problem (the tiny model the checks use),
gradcheck (finite differences and autograd against both), gradient_errors (the assignment's three
gradient errors, computed its way), kernel_check (the compiled training kernel against float64
autograd), worked_example (H = 1, every number printed).

May import: errors, model (its spec, and the training kernel that kernel_check checks). NumPy and
torch only as references; never train, decode or above.
"""
