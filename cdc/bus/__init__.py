"""The event bus: committed events on a Redis stream, from `cdc run` to `cdc serve` workers.
The only package that imports `redis`."""
