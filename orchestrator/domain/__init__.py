"""The pure core: identities, lifecycles and rules. No I/O, no clocks, no asyncio.

Everything here is a function of its arguments; time arrives as an argument (`now`).
"""
