"""/proxy/{provider}/{path}: which path, headers and body cross to the provider, and back.

    path.py      the upstream path and the rules that keep it inside the provider
    headers.py   which headers cross, each way
    body.py      the caller's body upstream and the provider's body back, streamed
"""
