"""ARC data layer: task IO and validation (`arc`), grid <-> tokens (`tokens`), augmentations with
exact inverses (`augment`), the streaming dataset builder (`build`) and the memory-mapped loader
(`dataset`). Everything downstream reads ARC through these modules.

Submodules are imported explicitly (`from hrm_edge.data.arc import load_tasks`) so importing the
package stays cheap.
"""
