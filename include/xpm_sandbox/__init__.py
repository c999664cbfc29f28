"""A stand-in for XPM 3.1 and Xero identity, over real HTTP, for tests and the demo.

It is faithful to `shared/xpm-reference`: the same paths, XML shapes, value formats, gateway
errors, rate limits and OAuth rules as the real service. It is not for production.
"""
