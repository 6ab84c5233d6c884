"""Unit tier: pure functions on inline data; the whole tier runs in well under a minute."""
