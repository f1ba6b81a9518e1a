"""The fleet: several appliances as one system over a NATS broker (off until configured).

- ``config``: the ``[fleet]`` table of config.toml, checked at start.
- ``keys``: this device's own NATS key, made at its first start and never leaving it.
- ``subjects``: the subject names and, from them, what each device may publish and read.
- ``server``: the nats-server configuration of the fleet-server role.
- ``wire``: what crosses the broker (heartbeats, requests' replies), msgpack-encoded.
- ``status``: the fleet as one device sees it, for the API, the CLI and the panel.
- ``link``: one device's connection: heartbeats, the peers it hears, and the request/reply
  that spans devices, its types' pools being queue groups across the fleet.

The broker authenticates each device by its key, and the subjects carry the sender's name,
which the broker's permissions tie to that key: a receiver takes who sent a message from the
subject, never from the payload, so no device can speak for another.
"""
