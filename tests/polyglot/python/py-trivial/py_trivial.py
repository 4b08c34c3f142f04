"""py-trivial: a channel that returns delivered and does nothing else (the latency
benchmark's Python plugin)."""

import switchyard_sdk as sy


def deliver(delivery):
    """Delivers nothing, at once."""
    return sy.delivered()


Outbound = sy.export_channel(deliver, name="py-trivial")
