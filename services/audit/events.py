"""Every event audit publishes, in one place (none yet: purges will be the first)."""

ALL = ()
