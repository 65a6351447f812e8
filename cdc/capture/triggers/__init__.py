"""The trigger source, for servers whose binlog is out of reach: capture triggers stage
each row change in a table (generated and installed here), and the mover reads the
committed staging rows in order into the event table."""
