"""The event tables: the only SQL on them lives here (schema and names, the writer,
the checkpoint, the history reader)."""
