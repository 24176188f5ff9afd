// Every page of the console: one entry per path. Fields:
//   path        "/users" or with parameters "/users/:id" (the page gets them as `params`)
//   page        the page component (pages/*.js); it gets {params, query, hash}
//   title       the window title
//   access      "guest": signed-out only (signed-in users go home), "public": anyone,
//               "signed_in": needs a session (else the sign-in page)
//   permission  (signed_in) the permission the API needs for the page: without it the page
//               says "not allowed" (the server refuses anyway). A list means any one of them
//               (["vm.view", "node.view", "storage.view"]: the page shows what each one allows)
//   nav         (signed_in) the area's name in the navigation; entries show only with the permission
//   frame       false: a signed-in page without the frame's navigation (forced steps)
// Navigation order is the order here.
import { SignIn } from "./pages/signin.js";
import { Register } from "./pages/register.js";
import { Invite } from "./pages/invite.js";
import { ForgotPassword, ResetPassword, ChangePasswordNow } from "./pages/password.js";
import { EnrollNow } from "./pages/twofactor.js";
import { Profile } from "./pages/profile.js";
import { UsersPage } from "./pages/users.js";
import { InvitationsPage } from "./pages/users-invitations.js";
import { AllTenantsPage } from "./pages/users-all-tenants.js";
import { RolesPage, RoleNewPage, RolePage } from "./pages/roles.js";
import { GroupsPage, GroupPage } from "./pages/groups.js";
import { TenantsPage } from "./pages/tenants.js";
import { TenantPage } from "./pages/tenants-detail.js";
import { ConnectionsPage } from "./pages/connections.js";
import { AuditPage } from "./pages/audit.js";
import { SyncPage } from "./pages/sync.js";
import { InventoryPage } from "./pages/inventory.js";
import { SettingsPage } from "./pages/settings.js";

export const routes = [
  { path: "/sign-in", page: SignIn, title: "Sign in", access: "guest" },
  { path: "/register", page: Register, title: "Register", access: "guest" },
  { path: "/forgot-password", page: ForgotPassword, title: "Forgot password", access: "guest" },
  { path: "/invite", page: Invite, title: "Accept invitation", access: "public" },
  { path: "/reset-password", page: ResetPassword, title: "Choose a new password", access: "public" },
  { path: "/change-password", page: ChangePasswordNow, title: "Change your password", access: "signed_in", frame: false },
  { path: "/setup-2fa", page: EnrollNow, title: "Set up two-factor authentication", access: "signed_in", frame: false },
  { path: "/profile", page: Profile, title: "Profile", access: "signed_in" },
  // User administration (pages/users*.js)
  { path: "/users", page: UsersPage, title: "Users", access: "signed_in", permission: "admin.users", nav: "Users" },
  { path: "/users/invitations", page: InvitationsPage, title: "Invitations", access: "signed_in", permission: "admin.users" },
  { path: "/users/all-tenants", page: AllTenantsPage, title: "Users of every tenant", access: "signed_in", permission: "admin.users" },
  // Roles and their assignments (pages/roles*.js)
  { path: "/roles", page: RolesPage, title: "Roles", access: "signed_in", permission: "admin.rbac", nav: "Roles" },
  { path: "/roles/new", page: RoleNewPage, title: "New role", access: "signed_in", permission: "admin.rbac" },
  { path: "/roles/:id", page: RolePage, title: "Role", access: "signed_in", permission: "admin.rbac" },
  // LDAP groups and their members (pages/groups*.js)
  { path: "/groups", page: GroupsPage, title: "Groups", access: "signed_in", permission: "admin.rbac", nav: "Groups" },
  { path: "/groups/:id", page: GroupPage, title: "Group", access: "signed_in", permission: "admin.rbac" },
  // Tenants and their members (pages/tenants*.js)
  { path: "/tenants", page: TenantsPage, title: "Tenants", access: "signed_in", permission: "tenant.view", nav: "Tenants" },
  { path: "/tenants/:id", page: TenantPage, title: "Tenant", access: "signed_in", permission: "tenant.view" },
  // Proxmox VE connections (pages/connections*.js)
  { path: "/connections", page: ConnectionsPage, title: "Connections", access: "signed_in", permission: "connection.view", nav: "Connections" },
  // Audit log and sync status (pages/audit.js, pages/sync.js)
  { path: "/audit", page: AuditPage, title: "Audit log", access: "signed_in", permission: "admin.audit", nav: "Audit" },
  { path: "/sync", page: SyncPage, title: "Sync", access: "signed_in", permission: "sync.view", nav: "Sync" },
  // Proxmox VE inventory and power actions (pages/inventory.js)
  { path: "/inventory", page: InventoryPage, title: "Inventory", access: "signed_in", permission: ["vm.view", "node.view", "storage.view"], nav: "Inventory" },
  // Platform settings, super admins (pages/settings*.js)
  { path: "/settings", page: SettingsPage, title: "Settings", access: "signed_in", permission: "admin.settings", nav: "Settings" },
];
