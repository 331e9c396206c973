"""The Plan: a pure function of Spec + Facts (+ the State journal) -> ordered Steps.

- ``model``: the Plan and the Choice it explains; ``step``: a Step, the unit of change and undo
- ``choice``: which protocol a share uses, read from the VM's capabilities
- ``resolve``: spec + facts + journal -> the plan that makes the systems match the spec
- ``share``, ``device``, ``network``: the step builders of one share, layer by layer
- ``removal``: plans that undo a journal (remove, recovery after a crash, orphans)

Nothing here touches a system. Import from the submodules: ``state`` needs ``step`` before the
rest of the package can load.
"""
