"""VirtualBox through its SDK, with VBoxManage as fallback: the settings of a backend not built yet
in this version."""
