"""The operator's commands that read the server: `cdc check` and `cdc status`."""
