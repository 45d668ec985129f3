"""The experiments room: studies that train many models and write reports.

study (many runs in one resumable work folder), report (the header every report shares), init and
init_verdicts, optimizers and optimizer_plots (the assignment's Parts 5 and 6), backprop and
distance (the gradient studies), bench (training-step and generation speed).

May import: everything below it (data, verse, model, lesson, train, decode); never serve or cli.
"""
