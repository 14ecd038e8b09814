"""ComfyUI nodes of spl-sdk: "SPL Align" and "SPL Refine" (docs/comfyui.md).

Put this folder (or a link to it) in ``ComfyUI/custom_nodes`` with spl-sdk installed
in ComfyUI's Python, or install it from the ComfyUI registry (pyproject.toml's
``[tool.comfy]``). ComfyUI reads the two mappings below.
"""

from spl_comfy.nodes import SPLAlign, SPLRefine

NODE_CLASS_MAPPINGS = {"SPLAlign": SPLAlign, "SPLRefine": SPLRefine}
NODE_DISPLAY_NAME_MAPPINGS = {"SPLAlign": "SPL Align", "SPLRefine": "SPL Refine"}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
