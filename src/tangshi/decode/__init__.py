"""The decoding room: a request for poems in, poems out.

search (the original procedure, greedy, sampling, beam), constraints (form, rhyme, 平仄, acrostic,
keywords and couplets as masks over the vocabulary), poems (one request → poems: script,
constraint, decoding, records), request (the options a request takes, for the CLI and the API).

May import: errors, text, machine, outputs, data, verse, model.
"""
