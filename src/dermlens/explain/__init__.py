"""Why the model said what it said: Grad-CAM heatmaps, drawn over the image it saw.

Serving reads the heatmaps from the exported model's ``class_maps`` output (`dermlens.export.class_maps`)
and needs only numpy, Pillow and a matplotlib colour table; `dermlens.explain.gradcam` is the torch
version for any layer of a checkpoint.
"""

from dermlens.explain.heatmap import class_heatmap, overlay_heatmap, png_data_url, to_png

__all__ = ["class_heatmap", "overlay_heatmap", "png_data_url", "to_png"]
