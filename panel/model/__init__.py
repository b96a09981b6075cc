"""The model behind the SDK boundary: only ask.py, review and the CLI's setup reach in here.

    endpoint.py   which endpoint answers: its URL spelled one way, loopback or not, its API key
    embedded.py   the embedded llama.cpp server: runtime check, its GGUF file, start and stop
    identity.py   what answers a run, for its cache key (a URL, or the embedded weights' sha256)
    client.py     the OpenAI client with our request hooks (budget check, request count)
    replies.py    what a chat completion must hold, and the tokens it reports
    modes.py      structured-output modes: build the request, parse the reply, shape the re-ask

Nothing here is imported by the store, the tally or the pages (tests/test_sdk_boundary.py).
"""
