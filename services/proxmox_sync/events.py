"""Every event proxmox_sync publishes, in one place (none yet)."""

ALL = ()
