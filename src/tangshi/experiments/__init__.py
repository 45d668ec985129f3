"""The experiments room: studies that train many models and write reports.

study (many runs in one resumable work folder), report (the header every report shares), init,
optimizers, backprop and distance (the assignment's Parts 5 and 6 and the gradient studies), bench
(training-step and generation speed).

May import: everything below it (data, verse, model, lesson, train, decode); never serve or cli.
"""
