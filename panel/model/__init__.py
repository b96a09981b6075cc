"""The model behind the SDK boundary (openai, httpx2): asking (panel.ask), review and serving use it.

    endpoint.py   which endpoint answers: its URL spelled one way, loopback or not, its API key
    embedded.py   the embedded llama.cpp server: runtime check, its GGUF file, start and stop
    identity.py   what answers a run, for its cache key (a URL, or the embedded weights' sha256)
    client.py     the OpenAI client with our request hooks (budget check, request count)
    replies.py    what a chat completion must hold, and the tokens it reports
    modes.py      structured-output modes: build the request, parse the reply, shape the re-ask
    logprobs.py   asking for token log-probabilities, and the probability of the verdict token

The store, the tally and the pages import only modes.py of it (config checks mode names there), SDK-free
(tests/test_sdk_boundary.py); the data they read is in panel/answers.py.
"""
