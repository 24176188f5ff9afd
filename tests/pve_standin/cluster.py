"""The stand-in's cluster: inventory (/cluster/resources) and VM/CT power actions."""
