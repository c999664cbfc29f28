"""A stand-in for XPM 3.1 and Xero identity, over real HTTP, for tests and the demo.

It follows what `docs/xpm-api.md` records about the real services: the same paths, XML shapes,
value formats, gateway errors, rate limits and OAuth rules. It is not for production.
"""
