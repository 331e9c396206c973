"""One renderer/parser per file format vmshare edits: owned blocks, fstab, PowerShell, .vmx."""
