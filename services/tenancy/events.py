"""Every event tenancy publishes, in one place (none yet)."""

ALL = ()
