"""Row images to JSON-safe values: one table of MySQL types (`types`) read by the
library path (`library`) and by the compiled decoder (`compiled`)."""
