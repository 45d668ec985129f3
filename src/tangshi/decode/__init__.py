"""The decoding room: a request for poems in, poems out.

search (the original procedure, greedy, sampling, beam), constraints (form, rhyme, 平仄, acrostic,
keywords and couplets as masks over the vocabulary), request (every setting a request takes,
checked once; the CLI's options and the web API's models are made from it), poems (a request's
task: its texts read and its constraint built once, then its records streamed), reading (poems
read back for `tangshi metrics`).

May import: errors, text, machine, outputs, data, verse, model.
"""
