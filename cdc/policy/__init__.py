"""Who may see what, as pure decisions: grants (tables, types, scopes), static tokens and
signed tokens (JWT), and the redaction of columns at capture. No I/O here: keys and
tokens come in as values, from the parts that read files and requests."""
