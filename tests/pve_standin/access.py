"""The stand-in's access control: users, groups, roles, ACLs and realms (/access/...)."""
