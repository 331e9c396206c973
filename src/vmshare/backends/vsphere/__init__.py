"""VMware vSphere/ESXi through pyVmomi: the settings of a backend not built yet in this version."""
