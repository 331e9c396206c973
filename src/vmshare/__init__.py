"""vmshare: share a host directory into a virtual machine across hypervisors."""

__version__ = "0.1.0"
