"""dermlens: skin-lesion image classification you can train, evaluate, explain and serve yourself.

dermlens is decision support, never a diagnosis. Heavy libraries (torch, onnxruntime) are imported
where they are used, so ``import dermlens`` stays fast.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "dermlens is decision support, not a diagnosis. It can be wrong; "
    "if a skin lesion worries you or is changing, see a dermatologist."
)
