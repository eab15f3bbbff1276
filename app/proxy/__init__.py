"""/proxy/{provider}/{path}: the rules of the escape hatch to a provider's own API.

    relay.py     the proxied call: checks in order, the provider called, its answer relayed back
    path.py      the upstream path and the rules that keep it inside the provider
    headers.py   which headers cross, each way
    body.py      the caller's body upstream, streamed, read only as far as the model check needs
    model_check.py  models named in the path; files and batches refused while a model list is set
    usage.py     the answer's usage, read as it is relayed, and the charge (or estimate) at its close
"""
