"""Every event audit publishes, in one place. They are recorded like any other event."""

ALL = ()
