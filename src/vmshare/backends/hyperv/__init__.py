"""Hyper-V through PowerShell, locally or over WinRM: the settings of a backend not built yet in
this version."""
