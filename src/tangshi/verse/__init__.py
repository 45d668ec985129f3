"""The verse room: the rules of Tang regulated verse and how a poem is scored against them.

prosody (forms, 平水韻 rhyme groups, 平仄 patterns), metrics (form, rhyme, tone, repetition and
coverage of generated poems).

May import: errors, text. Nothing that knows about models or tensors.
"""
