"""VMware Workstation/Fusion through vmrun and the .vmx file: the settings of a backend not built
yet in this version."""
