"""Read models folded from the event log, one module per projection, and the runner that feeds them."""
