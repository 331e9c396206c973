"""``vmshare bench``: measure a guest directory (a share) next to a guest-local one.

``workloads`` holds the guest scripts and the parsing of what they print (pure: no I/O);
``stats`` the medians, percentiles and the report's JSON shape; ``runner`` drives them
through a guest channel, and ``visibility`` times host edits seen in the guest.
"""
