"""Upstream adapters: each turns a chat request on a credential into normalized deltas (`base`).

A leaf package: it reads credentials through its own `UpstreamCredential` protocol and never imports the
pool (`tokens`), the web page (`mirror`) or the site; `openai_compat.registry` maps kinds to adapters.
"""
