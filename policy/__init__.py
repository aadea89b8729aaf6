"""The chat stack's policy pack (Pulumi CrossGuard): rules in `rules.py`, their registration in `pack.py`.

`pulumi preview --policy-pack policy` runs `__main__.py`; importing this package or its modules never starts the
analyzer server, so tests and tools can use the rules directly.
"""
