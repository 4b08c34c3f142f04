"""py-hostile: a channel that misbehaves on purpose, picked by the payload:
{"attack": "loop"} spins forever (the CPU deadline must stop it), {"attack": "memory"}
allocates without bound (the memory cap must stop it); anything else is delivered."""

import switchyard_sdk as sy


def deliver(delivery):
    """Spins, hoards or delivers, as the payload says."""
    try:
        attack = delivery.notification.payload_json().get("attack")
    except (ValueError, AttributeError):
        attack = None
    if attack == "loop":
        n = 0
        while True:
            n += 1
    if attack == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))  # zero-filled, so every page is touched
    return sy.delivered()


Outbound = sy.export_channel(deliver, name="py-hostile")
