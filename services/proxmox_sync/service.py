"""proxmox_sync: propagation to LDAP and Proxmox VE (the sync lands with issue 8); today the
connection test."""
from nameko.rpc import RpcProxy

from kernel.service import Database, ServiceBase, rpc
from services.proxmox_sync import pve, storage


class ProxmoxSyncService(ServiceBase):
    name = "proxmox_sync"
    db = Database(storage.metadata)
    tenancy = RpcProxy("tenancy")

    # --- connections --------------------------------------------------------------

    @rpc
    def test_connection(self, connection_id, timeout=pve.STEP_TIMEOUT):
        """Does the connection's endpoint answer, and do its credentials work? GET /version with them.

        {"ok": true, "version", "release"} or {"ok": false, "error": {"code", "message"}}; the
        message never holds the secret. `timeout` bounds each network step (seconds).
        """
        endpoint = pve.Endpoint.from_credentials(self.tenancy.connection_credentials(connection_id))
        try:
            return {"ok": True, **pve.probe(endpoint, float(timeout))}
        except pve.PveFailure as failure:
            return {"ok": False, "error": failure.as_dict()}
