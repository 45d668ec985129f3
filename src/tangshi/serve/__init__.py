"""The serving room: `tangshi serve`, the web page and its JSON API (FastAPI on uvicorn).

app (the API, the worker pool and the queue), web/ (the page: HTML, CSS, JS).

May import: errors, text, verse, model, decode. Never train, experiments or cli.
"""
