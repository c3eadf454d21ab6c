"""Stand-ins for torchvision's references/classification helpers (presets, utils, sampler, transforms).

tinyml/patch-aware-training/patch_aware_train.py imports these four modules from the working
directory; Auto-Compression does not ship them. These are the harness's own minimal versions,
written against what that script calls (the torchvision >= 0.16 keyword arguments), not copies.
"""
