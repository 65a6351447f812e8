"""Programs that read a cdc stream as a client: `cdc tail`."""
