"""Feeds: how a serving process learns of committed events (`cdc.protocols.Feed`)."""
