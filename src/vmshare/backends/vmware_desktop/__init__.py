"""VMware Workstation/Fusion through vmrun and the .vmx file: HGFS shared folders (backend.py),
vmrun itself (vmrun.py), its guest channel (channel.py), what a .vmx says (vmxfacts.py)."""
